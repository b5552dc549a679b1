# Athena over the Parquet tier that `s3-eventstore publish` writes under <prefix>published/
# (docs/FORMAT.md, section 10): one row per event, partitioned by day with partition
# projection, so there is no crawler and no MSCK REPAIR, and a query that filters on day
# lists only those days' folders.
#
# Only files named by a committed log entry hold published rows. Between a publisher's
# file upload and its commit, or after a killed publisher until the next run collects its
# leftovers, a day folder may hold an uncommitted file: see "Athena and uncommitted files"
# in docs/ANALYTICS.md for the query that reads committed files only.

locals {
  published_prefix = "${local.prefix}published/"

  # Must equal s3_eventstore/columnar/schema.py COLUMNS, in order (a test compares them,
  # and the Parquet schema the library writes).
  published_columns = [
    { name = "thread_id", type = "string", comment = "Thread id (decoded, as given to append)" },
    { name = "turn", type = "decimal(20,0)", comment = "Turn number (u64); filled for compacted turns too" },
    { name = "position", type = "int", comment = "0-based position of the event in its turn (append order)" },
    { name = "event_id", type = "string", comment = "UUID of the event" },
    { name = "sequence", type = "decimal(20,0)", comment = "sequence (u64; restarts every agent run)" },
    { name = "timestamp", type = "timestamp", comment = "timestamp as a UTC instant, nanoseconds" },
    { name = "timestamp_text", type = "string", comment = "timestamp exactly as written (offset and digits kept)" },
    { name = "type", type = "string", comment = "Event type tag" },
    { name = "message_id", type = "string", comment = "message_id (string) on message events, else NULL" },
    { name = "tool_name", type = "string", comment = "name (string) on tool_* events, else NULL" },
    { name = "tool_call_id", type = "string", comment = "id (string) on tool_* events, else NULL" },
    { name = "input_tokens", type = "bigint", comment = "usage.input_tokens (int64) on turn events, else NULL" },
    { name = "output_tokens", type = "bigint", comment = "usage.output_tokens (int64), else NULL" },
    { name = "cached_input_tokens", type = "bigint", comment = "usage.cached_input_tokens (int64), else NULL" },
    { name = "cache_creation_input_tokens", type = "bigint", comment = "usage.cache_creation_input_tokens, else NULL" },
    { name = "error_message", type = "string", comment = "message of error events, error_message of auto_retry_start, final_error of auto_retry_end (strings), else NULL" },
    { name = "envelope", type = "string", comment = "The JSON line exactly as stored (lossless)" },
  ]
}

resource "aws_glue_catalog_table" "published_events" {
  count = var.analytics_enabled ? 1 : 0

  name          = var.published_table_name
  database_name = aws_glue_catalog_database.this[0].name
  description   = "One row per published event (Parquet, written by s3-eventstore publish), partitioned by day: the UTC date of the turn's last event."
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL                       = "TRUE"
    classification                 = "parquet"
    "parquet.compression"          = "ZSTD"
    "projection.enabled"           = "true"
    "projection.day.type"          = "date"
    "projection.day.format"        = "yyyy-MM-dd"
    "projection.day.range"         = "${var.published_first_day},NOW"
    "projection.day.interval"      = "1"
    "projection.day.interval.unit" = "DAYS"
    "storage.location.template"    = "s3://${local.bucket_name}/${local.published_prefix}day=$${day}/"
  }

  partition_keys {
    name    = "day"
    type    = "string"
    comment = "UTC date (yyyy-MM-dd) of the last event of the event's turn"
  }

  storage_descriptor {
    location      = "s3://${local.bucket_name}/${local.published_prefix}"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      name                  = "parquet"
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.published_columns

      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

variable "published_table_name" {
  description = "Glue catalog table name for the Parquet tier (s3-eventstore publish)."
  type        = string
  default     = "events"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,254}$", var.published_table_name))
    error_message = "published_table_name must be lowercase letters, digits and underscores, starting with a letter."
  }
}

variable "published_first_day" {
  description = "First day (yyyy-MM-dd) that partition projection considers for the Parquet tier; the last is today."
  type        = string
  default     = "2024-01-01"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.published_first_day))
    error_message = "published_first_day must be a date written yyyy-MM-dd (for example 2024-01-01)."
  }
}

output "glue_published_table_name" {
  description = "Glue table over the Parquet tier (null when analytics is disabled)."
  value       = one(aws_glue_catalog_table.published_events[*].name)
}
