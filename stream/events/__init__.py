"""Pose events: rules over tracked people (zones, lines, person down, hands up, counts) turned
into records, and where the records go.

``rules`` (pure geometry and pose tests) → ``engine`` (per-source state machines) → ``record``
(the JSON record) → ``sink`` (``EventSink``: the ``--events`` file, snapshots, and every output's
``publish(record)``); ``settings`` holds the ``events:`` config models and ``wiring`` builds the
sink of a run.  The delivery outputs (MQTT, webhooks, clips) live beside them and are imported
only when configured.  README, section Events, documents what users see.
"""
