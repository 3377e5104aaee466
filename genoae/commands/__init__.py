"""One module per command: read the inputs, call the library, write the outputs, return what was written.

The click shell (:mod:`genoae.cli`) parses options and calls one function here; everything here can also be called
from Python with the same arguments.
"""
