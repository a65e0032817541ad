# luffy workflow entry point. The DAG (data -> model -> train -> eval -> report) is being built;
# until it lands, `all` has nothing to do.


rule all:
    default_target: True
    input:
        [],
