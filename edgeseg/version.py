"""edgeseg's version, in a core module so that any layer can record it without importing the
``edgeseg`` facade (which imports the runtime): reports, compare files and ``edgeseg doctor``."""

__version__ = "0.1.0"
