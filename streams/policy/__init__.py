"""The pure policy: the consent-history model and the rules. Depends on ``events`` only.

- ``history``: ``ConsentHistory`` (per subject, per controller, event-time ordered,
  bounded, erasable, compact ``to_obj``/``from_obj``) and ``ConsentState``.
- ``calls``: the per-controller call log R11 reads (sales calls, refusals during a call).
- ``rules``: one module per rule group (basis R1-R3, withdrawal R5-R6, partners R13-R14,
  sms R8-R9, telephone R10-R12, transfers R15-R16, political R17-R19, retention R20,
  notice R4/R21/R22, leads R23, config CFG-*), each rule a pure function with
  ``RULE_ID``, ``SOURCE`` and ``SEVERITY``.
- ``engine``: ``evaluate`` a use -> ``Evaluation``; ``make_alerts``, ``make_verdict``,
  ``corrections``, ``resolve_alert``; ``PolicySettings``.
- ``registry``: ``resolve`` a use to its declaration; ``validate_declarations``.
- ``purposes``: the canonical purpose taxonomy.

No Faust, no Kafka, no I/O here.
"""
