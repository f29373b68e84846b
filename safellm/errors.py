"""The error tree. The class says who must act; `app/` maps classes to HTTP codes.

    SafeLLMError                      base; never raised itself
    ├── UserInputError                the caller must fix the request (CLI flag, REST body, question)
    │   ├── UnknownPatientError       no such admission / ICU stay in the cohort
    │   └── UnknownNameError          unknown task, model name, prompt or suite
    ├── DataError                     the data owner must fix the data files
    │   ├── MissingTableError         a required MIMIC table is absent
    │   ├── SchemaError               a table lacks a required column
    │   └── DataFormatError           a file cannot be read (truncated gzip, bad timestamp, ...)
    ├── ConfigError                   the operator must fix settings / installation
    └── ArtifactError                 a built artifact (data, model bundle) is missing or stale:
                                      run the command named in the message

Every message names the file, column or setting involved, and what to do.
"""

from __future__ import annotations


class SafeLLMError(Exception):
    """Base of every error the project raises on purpose."""


class UserInputError(SafeLLMError):
    """Bad input from the caller."""


class UnknownPatientError(UserInputError):
    """The requested admission or ICU stay is not in the cohort."""


class UnknownNameError(UserInputError):
    """An unknown task, model, prompt or suite name."""


class DataError(SafeLLMError):
    """The input data is wrong; the data owner must act."""


class MissingTableError(DataError):
    """A required table is absent from the MIMIC folder."""


class SchemaError(DataError):
    """A table lacks a required column."""


class DataFormatError(DataError):
    """A file cannot be parsed: truncated/corrupt compression, unparsable values."""


class ConfigError(SafeLLMError):
    """Settings or installation are wrong; the operator must act."""


class ArtifactError(SafeLLMError):
    """A built artifact is missing or unusable; the message names the command that builds it."""
