"""The recipe: its schema (`schema`), how a file is loaded and checked (`load`), where a key is written
(`locate`) and the stage table (`stages`). Import from those modules; this one stays empty so that
importing the schema never pulls in the loader."""
