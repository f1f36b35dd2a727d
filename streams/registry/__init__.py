"""The purpose registry's I/O: the YAML file (``file``), the compacted topic (``topic``),
the in-memory view every worker follows (``view``) and the ``consentinel registry``
command (``command``). The registry's pure model lives in ``policy.registry``."""
