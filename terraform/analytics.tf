# Athena over the turn objects: a Glue catalog table, a workgroup with encrypted results,
# and a policy for running queries in it. See README.md, "Querying with Athena".

locals {
  # One row per event envelope (one JSON line). Nested, free-form fields are declared as
  # string: the OpenX SerDe hands their JSON text through, and json_extract() reads them,
  # so new event fields never break the table. Unknown fields are ignored on read.
  glue_columns = [
    { name = "event_id", type = "string", comment = "UUID of the event" },
    { name = "sequence", type = "decimal(20,0)", comment = "Position in the thread (u64)" },
    { name = "timestamp", type = "string", comment = "RFC 3339 UTC with nanoseconds, e.g. 2025-06-01T12:00:00.539384757Z" },
    { name = "type", type = "string", comment = "Event type, e.g. start" },
    { name = "thread_id", type = "string", comment = "Thread id (not percent-encoded)" },
    { name = "turn", type = "decimal(20,0)", comment = "Turn number (u64)" },
    { name = "message_id", type = "string", comment = "Message id, on message events" },
    { name = "delta", type = "string", comment = "Streamed text delta" },
    { name = "text", type = "string", comment = "Full text, on completed message events" },
    { name = "tool_name", type = "string", comment = "Tool name, on tool events" },
    { name = "input", type = "string", comment = "Free-form tool input object as JSON text" },
    { name = "usage", type = "string", comment = "Token usage object as JSON text: input_tokens, output_tokens, cached_input_tokens, cache_creation_input_tokens" },
  ]

  athena_workgroup_arn = "arn:${local.partition}:athena:${local.region}:${local.account_id}:workgroup/${local.athena_workgroup_name}"

  # The query results prefix: what Athena needs to write, read back and clean up results.
  athena_results_s3_actions = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
  ]

  athena_query_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "RunQueriesInWorkgroup"
        Effect = "Allow"
        Action = [
          "athena:BatchGetQueryExecution",
          "athena:GetQueryExecution",
          "athena:GetQueryResults",
          "athena:GetQueryResultsStream",
          "athena:GetWorkGroup",
          "athena:ListQueryExecutions",
          "athena:StartQueryExecution",
          "athena:StopQueryExecution",
        ]
        Resource = local.athena_workgroup_arn
      },
      {
        Sid    = "ReadCatalog"
        Effect = "Allow"
        Action = [
          "glue:BatchGetPartition",
          "glue:GetDatabase",
          "glue:GetPartition",
          "glue:GetPartitions",
          "glue:GetTable",
          "glue:GetTables",
        ]
        Resource = [
          "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog",
          "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${local.glue_database_name}",
          "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${local.glue_database_name}/*",
        ]
      },
      {
        Sid      = "LocateBucket"
        Effect   = "Allow"
        Action   = ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
        Resource = local.bucket_arn
      },
      {
        Sid      = "ListResults"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket_arn
        Condition = {
          StringLike = { "s3:prefix" = ["${var.athena_results_prefix}*"] }
        }
      },
      {
        Sid      = "ReadWriteResults"
        Effect   = "Allow"
        Action   = local.athena_results_s3_actions
        Resource = "${local.bucket_arn}/${var.athena_results_prefix}*"
      },
      {
        Sid      = "ResultsKeyThroughS3"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = local.kms_key_arn
        Condition = {
          StringEquals = { "kms:ViaService" = local.s3_kms_via_service }
          StringLike = {
            "kms:EncryptionContext:aws:s3:arn" = [local.bucket_arn, "${local.bucket_arn}/${var.athena_results_prefix}*"]
          }
        }
      },
    ]
  })
}

resource "aws_glue_catalog_database" "this" {
  count = var.analytics_enabled ? 1 : 0

  name        = local.glue_database_name
  description = "s3-eventstore ${var.name}: agent event turns in s3://${local.bucket_name}/${local.threads_prefix}"

  tags = var.tags
}

resource "aws_glue_catalog_table" "turn_events" {
  count = var.analytics_enabled ? 1 : 0

  name          = var.glue_table_name
  database_name = aws_glue_catalog_database.this[0].name
  description   = "One row per agent event envelope. Not partitioned: recover the thread id and turn from \"$path\" (see the module README)."
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL       = "TRUE"
    classification = "json"
    # Athena picks the codec from the file extension (.zst); this is informational.
    compressionType = "zstd"
  }

  storage_descriptor {
    # Athena reads every object below this location, whatever the depth, so the shard
    # and thread folders need no partitions.
    location      = "s3://${local.bucket_name}/${local.threads_prefix}"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    compressed    = true

    ser_de_info {
      name                  = "openx-json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        # A line that is not JSON is corruption in an archive: fail the query, don't hide it.
        "ignore.malformed.json" = "false"
        "dots.in.keys"          = "false"
      }
    }

    dynamic "columns" {
      for_each = local.glue_columns

      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

# The same objects again, partitioned by the key layout's Hive-style folders, for cheap
# single-thread lookups: Athena projects the partitions from the query instead of scanning
# every thread. `thread` is injected, so every query on this table must say
# `WHERE thread = '<percent-encoded id>'` (Athena refuses it otherwise); `shard` is an
# enum, so giving it too narrows the listing from 256 folders to one.
resource "aws_glue_catalog_table" "turn_events_by_thread" {
  count = var.analytics_enabled && var.thread_table_enabled ? 1 : 0

  name          = "${var.glue_table_name}_by_thread"
  database_name = aws_glue_catalog_database.this[0].name
  description   = "One row per agent event envelope, partitioned by shard and (percent-encoded) thread via partition projection: queries must filter on thread."
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL                    = "TRUE"
    classification              = "json"
    compressionType             = "zstd"
    "projection.enabled"        = "true"
    "projection.shard.type"     = "enum"
    "projection.shard.values"   = join(",", [for i in range(256) : format("%02x", i)])
    "projection.thread.type"    = "injected"
    "storage.location.template" = "s3://${local.bucket_name}/${local.threads_prefix}shard=$${shard}/thread=$${thread}/"
  }

  partition_keys {
    name    = "shard"
    type    = "string"
    comment = "First two lowercase hex digits of SHA-256 of the thread id"
  }

  partition_keys {
    name    = "thread"
    type    = "string"
    comment = "Percent-encoded thread id (equal to the id for ids made of A-Z a-z 0-9 _ -)"
  }

  storage_descriptor {
    location      = "s3://${local.bucket_name}/${local.threads_prefix}"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    compressed    = true

    ser_de_info {
      name                  = "openx-json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        "ignore.malformed.json" = "false"
        "dots.in.keys"          = "false"
      }
    }

    dynamic "columns" {
      for_each = local.glue_columns

      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  count = var.analytics_enabled ? 1 : 0

  name          = local.athena_workgroup_name
  description   = "s3-eventstore ${var.name}: queries over the turn events; results encrypted with the store's key"
  state         = "ENABLED"
  force_destroy = var.force_destroy

  configuration {
    # Clients cannot override the output location or turn encryption off.
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff_per_query

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = "s3://${local.bucket_name}/${var.athena_results_prefix}"
      expected_bucket_owner = local.account_id

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = local.kms_key_arn
      }
    }
  }

  tags = var.tags
}

resource "aws_iam_policy" "athena_query" {
  count = var.analytics_enabled ? 1 : 0

  name        = "${var.name}-eventstore-athena-query"
  path        = var.iam_policy_path
  description = "s3-eventstore ${var.name}: run Athena queries in workgroup ${local.athena_workgroup_name} (attach together with the reader policy)"
  policy      = local.athena_query_policy

  tags = var.tags
}
