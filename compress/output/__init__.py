"""What a run leaves behind and what reads it back: the bundle, junit.xml, the report (markdown and
terminal), pareto.png, `compress verify` and `compress run --reproduce`."""
