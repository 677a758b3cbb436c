"""Asset metadata is shown in the Dagster UI and kept in its event log: it goes out redacted like every other output."""

from __future__ import annotations

import functools

import dagster as dg

from automodel.safety import RedactingFilter, redact_pii, redact_structure, redact_value


def redact_metadata_value(value):
    """Text, markdown and JSON values with personal data redacted; numbers, paths, URLs and tables' numbers unchanged."""
    if isinstance(value, str):
        return redact_pii(value)
    if isinstance(value, dg.MarkdownMetadataValue):
        return dg.MetadataValue.md(redact_pii(value.md_str or ""))
    if isinstance(value, dg.TextMetadataValue):
        return dg.MetadataValue.text(redact_pii(value.text or ""))
    if isinstance(value, dg.JsonMetadataValue):
        return dg.MetadataValue.json(redact_structure(value.data))
    if isinstance(value, dg.TableMetadataValue):  # previews of rows: labels and cells as the report shows them
        records = [dg.TableRecord({redact_pii(k): redact_value(v) for k, v in record.data.items()}) for record in value.records]
        schema = value.schema
        if schema is not None:  # column names too: proba_<class> columns name the classes
            schema = dg.TableSchema(columns=[dg.TableColumn(redact_pii(c.name), c.type, description=c.description) for c in schema.columns])
        return dg.MetadataValue.table(records=records, schema=schema)
    return value


def publish_metadata(context, metadata: dict) -> None:
    """``context.add_output_metadata`` with every value through ``redact_metadata_value``."""
    context.add_output_metadata({key: redact_metadata_value(value) for key, value in metadata.items()})


class RedactedStepError(Exception):
    """A stage's exception whose text could not be redacted in place (its class builds the message itself)."""


def _redact_exception_text(exc: BaseException) -> bool:
    """Redacts ``exc``'s string arguments in place; True when its text is clean afterwards."""
    try:
        exc.args = tuple(redact_pii(a) if isinstance(a, str) else a for a in exc.args)
        text = str(exc)
    except Exception:  # an exception class that refuses new args or cannot print: treat as unredactable
        return False
    return redact_pii(text) == text


def _redact_chain(exc: BaseException, seen: set[int]) -> None:
    """The exceptions ``exc`` was raised from or during: redacted too, or cut off from the record when they cannot be."""
    for attribute in ("__cause__", "__context__"):
        linked = getattr(exc, attribute)
        if linked is None or id(linked) in seen:
            continue
        seen.add(id(linked))
        if _redact_exception_text(linked):
            _redact_chain(linked, seen)
        else:
            setattr(exc, attribute, None)
            exc.__suppress_context__ = True


def redacted_errors(compute):
    """An asset body whose failure reaches Dagster's event log (and so the UI) redacted, and whose ``context.log`` redacts.

    Dagster records a failed step's exception text, its chained exceptions and every ``context.log`` line; data
    values quoted in them (a cell that did not parse, say) must leave the run as redacted as any other output.
    The exception keeps its class (the CLI tells user errors from crashes by it) and its traceback.
    """
    @functools.wraps(compute)
    def body(*args, **kwargs):
        context = kwargs.get("context", args[0] if args else None)
        log = getattr(context, "log", None)
        if log is not None and not any(isinstance(f, RedactingFilter) for f in log.filters):
            log.addFilter(RedactingFilter())
        try:
            return compute(*args, **kwargs)
        except Exception as exc:
            if not _redact_exception_text(exc):
                raise RedactedStepError(redact_pii(f"{type(exc).__name__}: {exc}")).with_traceback(exc.__traceback__) from None
            _redact_chain(exc, {id(exc)})
            raise

    return body
