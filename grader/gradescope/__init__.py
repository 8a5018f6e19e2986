"""Running inside Gradescope (issue 16): build the autograder bundle, and grade the one
submission Gradescope hands the container. Uses ``grader.grading`` and the student view of
``grader.batch.exports``; the container's sandbox is bwrap where it works, else the uid mode.
"""
