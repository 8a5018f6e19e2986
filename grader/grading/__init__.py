"""Grading one submission on the trusted side: the assignment spec, loading the notebook, static
checks, the session that talks to the box, the collected hidden tests and the pytest plugin test
authors import, the report model, and ``grade()`` (pipeline) that ties them together.

May import ``grader.sandbox`` and ``grader.inside.rpc``; knows nothing of folders of submissions,
databases, terminals or exports.
"""
