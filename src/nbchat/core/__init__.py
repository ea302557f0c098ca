"""The rules every nbchat peer shares, as pure code: no I/O, time and randomness passed in."""
