"""Asset metadata is shown in the Dagster UI and kept in its event log: it goes out redacted like every other output."""

from __future__ import annotations

import dagster as dg

from automodel.safety import redact_pii, redact_structure, redact_value


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
