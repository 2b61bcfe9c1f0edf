"""Pipeline stages, one module per dvc.yaml stage: load params, call the libraries, write the
stage's outputs. A stage module never imports another stage module."""
