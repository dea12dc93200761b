"""The Ray glue, and the only package that imports ray: the math and the chain engine do not."""
