"""Probes for the perceptron assignment: code that runs in the sandbox, next to the student module.

Only one test needs one: whether train_perceptron raises ValueError for labels other than -1
and +1. An exception raised by student code ends a direct call as status `error`, which a test
cannot tell apart from any other crash; here it is caught next to the student's code and
described as plain data. Everything is decided outside.
"""

MAX_MESSAGE_CHARS = 300


def _outcome(module, X, y, epochs, lr):
    """What train_perceptron(X, y, epochs, lr) did: returned, or raised (which exception, what text)."""
    try:
        module.train_perceptron(X, y, epochs, lr)
    except Exception as exc:  # any exception is an answer here; the test judges it
        return {
            "raised": type(exc).__name__,
            "is_value_error": isinstance(exc, ValueError),
            "message": str(exc)[:MAX_MESSAGE_CHARS],
        }
    return {"raised": None, "is_value_error": False, "message": ""}


def label_checks(module, X, cases, epochs, lr):
    """Run train_perceptron on X with each labelling in `cases` (a dict name -> labels)."""
    return {name: _outcome(module, X, y, epochs, lr) for name, y in cases.items()}
