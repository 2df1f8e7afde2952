"""The one base class of every error charpipe raises on purpose.

Each message names the cause and the way out; the command line prints it
without a traceback.
"""


class CharpipeError(Exception):
    """A failure with a message meant for the person running charpipe."""
