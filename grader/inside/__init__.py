"""Code that runs inside the sandbox, next to student code (the untrusted side).

Only these files are mounted into the box (with ``grader/__init__.py``). They import the stdlib,
numpy/torch where the assignment preloads them, and each other; never anything from the trusted
side, and nothing here decides a score: every value sent back is re-validated by the grader.
``rpc`` (the frame format) and ``datasets`` are also imported by the grader's side.
"""
