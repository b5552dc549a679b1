# Glue table over the turn objects and an Athena workgroup with encrypted results.

mock_provider "aws" {
  source = "./tests/mocks"
}

override_resource {
  target          = aws_kms_key.this
  override_during = plan
  values = {
    arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }
}

variables {
  name        = "agent-events"
  bucket_name = "acme-agent-events"
}

run "glue_table_reads_the_turn_objects" {
  command = plan

  assert {
    condition     = aws_glue_catalog_database.this[0].name == "agent_events" && aws_glue_catalog_table.turn_events[0].name == "turn_events" && aws_glue_catalog_table.turn_events[0].table_type == "EXTERNAL_TABLE"
    error_message = "An external table turn_events in database agent_events."
  }

  assert {
    condition     = aws_glue_catalog_table.turn_events[0].storage_descriptor[0].location == "s3://acme-agent-events/agent-events/threads/"
    error_message = "The table must sit on <prefix>threads/."
  }

  assert {
    condition     = aws_glue_catalog_table.turn_events[0].storage_descriptor[0].ser_de_info[0].serialization_library == "org.openx.data.jsonserde.JsonSerDe"
    error_message = "The table must use the OpenX JSON SerDe."
  }

  assert {
    condition     = aws_glue_catalog_table.turn_events[0].storage_descriptor[0].input_format == "org.apache.hadoop.mapred.TextInputFormat"
    error_message = "JSON lines are read as text (Athena decompresses .zst by extension)."
  }

  assert {
    condition = {
      for c in aws_glue_catalog_table.turn_events[0].storage_descriptor[0].columns : c.name => c.type
      if contains(["event_id", "sequence", "timestamp", "type", "thread_id", "turn", "usage", "input"], c.name)
      } == {
      event_id  = "string"
      sequence  = "decimal(20,0)"
      timestamp = "string"
      type      = "string"
      thread_id = "string"
      turn      = "decimal(20,0)"
      usage     = "string"
      input     = "string"
    }
    error_message = "Core envelope columns and nested fields as strings."
  }

  assert {
    condition     = length(aws_glue_catalog_table.turn_events[0].partition_keys) == 0
    error_message = "The table is not partitioned: thread and turn come from \"$path\"."
  }
}

run "athena_workgroup_encrypts_results_outside_the_store" {
  command = plan

  assert {
    condition     = aws_athena_workgroup.this[0].configuration[0].enforce_workgroup_configuration
    error_message = "Clients must not be able to override the workgroup settings."
  }

  assert {
    condition = [for r in aws_athena_workgroup.this[0].configuration[0].result_configuration : {
      location = r.output_location
      option   = r.encryption_configuration[0].encryption_option
      key      = r.encryption_configuration[0].kms_key_arn
      }] == [{
      location = "s3://acme-agent-events/athena-results/"
      option   = "SSE_KMS"
      key      = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    }]
    error_message = "Results go to athena-results/ encrypted with SSE-KMS and the store's key."
  }

  assert {
    condition     = !startswith(output.athena_results_s3_url, output.s3_url)
    error_message = "Query results must lie outside the store prefix."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_policy.athena_query[0].policy).Statement : s.Sid => s.Resource
      if contains(["RunQueriesInWorkgroup", "ReadWriteResults"], s.Sid)
      } == {
      RunQueriesInWorkgroup = "arn:aws:athena:us-east-1:123456789012:workgroup/agent-events"
      ReadWriteResults      = "arn:aws:s3:::acme-agent-events/athena-results/*"
    }
    error_message = "The Athena query policy is scoped to the workgroup and the results prefix."
  }
}

run "thread_table_projects_the_key_layout" {
  command = plan

  assert {
    condition     = aws_glue_catalog_table.turn_events_by_thread[0].name == "turn_events_by_thread" && output.glue_thread_table_name == "turn_events_by_thread"
    error_message = "The thread lookup table is <table>_by_thread."
  }

  assert {
    condition     = [for k in aws_glue_catalog_table.turn_events_by_thread[0].partition_keys : "${k.name}:${k.type}"] == ["shard:string", "thread:string"]
    error_message = "Partitioned by shard, then thread."
  }

  assert {
    condition     = aws_glue_catalog_table.turn_events_by_thread[0].parameters["storage.location.template"] == "s3://acme-agent-events/agent-events/threads/shard=$${shard}/thread=$${thread}/"
    error_message = "The location template must follow the key layout."
  }

  assert {
    condition = (
      aws_glue_catalog_table.turn_events_by_thread[0].parameters["projection.enabled"] == "true" &&
      aws_glue_catalog_table.turn_events_by_thread[0].parameters["projection.thread.type"] == "injected" &&
      aws_glue_catalog_table.turn_events_by_thread[0].parameters["projection.shard.type"] == "enum" &&
      length(split(",", aws_glue_catalog_table.turn_events_by_thread[0].parameters["projection.shard.values"])) == 256 &&
      startswith(aws_glue_catalog_table.turn_events_by_thread[0].parameters["projection.shard.values"], "00,01,02,") &&
      endswith(aws_glue_catalog_table.turn_events_by_thread[0].parameters["projection.shard.values"], ",fe,ff")
    )
    error_message = "shard is projected as the enum 00..ff and thread as injected."
  }

  assert {
    condition     = aws_glue_catalog_table.turn_events_by_thread[0].storage_descriptor[0].columns == aws_glue_catalog_table.turn_events[0].storage_descriptor[0].columns
    error_message = "Both tables have the same columns."
  }
}

run "published_table_reads_the_parquet_tier_by_day" {
  command = plan

  assert {
    condition     = aws_glue_catalog_table.published_events[0].name == "events" && output.glue_published_table_name == "events"
    error_message = "The Parquet tier's table is named events by default."
  }

  assert {
    condition     = aws_glue_catalog_table.published_events[0].storage_descriptor[0].location == "s3://acme-agent-events/agent-events/published/"
    error_message = "The table must sit on <prefix>published/."
  }

  assert {
    condition     = aws_glue_catalog_table.published_events[0].parameters["storage.location.template"] == "s3://acme-agent-events/agent-events/published/day=$${day}/"
    error_message = "Partitions are the day=YYYY-MM-DD folders."
  }

  assert {
    condition = (
      aws_glue_catalog_table.published_events[0].parameters["projection.enabled"] == "true" &&
      aws_glue_catalog_table.published_events[0].parameters["projection.day.type"] == "date" &&
      aws_glue_catalog_table.published_events[0].parameters["projection.day.format"] == "yyyy-MM-dd" &&
      aws_glue_catalog_table.published_events[0].parameters["projection.day.range"] == "2024-01-01,NOW"
    )
    error_message = "day is projected as a date, yyyy-MM-dd, from published_first_day to now."
  }

  assert {
    condition     = [for k in aws_glue_catalog_table.published_events[0].partition_keys : "${k.name}:${k.type}"] == ["day:string"]
    error_message = "Partitioned by day only."
  }

  assert {
    condition     = aws_glue_catalog_table.published_events[0].storage_descriptor[0].ser_de_info[0].serialization_library == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    error_message = "The files are Parquet."
  }

  assert {
    condition = {
      for c in aws_glue_catalog_table.published_events[0].storage_descriptor[0].columns : c.name => c.type
      if contains(["thread_id", "turn", "timestamp", "type", "input_tokens", "envelope"], c.name)
      } == {
      thread_id    = "string"
      turn         = "decimal(20,0)"
      timestamp    = "timestamp"
      type         = "string"
      input_tokens = "bigint"
      envelope     = "string"
    }
    error_message = "Typed columns and the lossless envelope."
  }
}

run "published_table_name_and_first_day_are_settable" {
  command = plan

  variables {
    published_table_name = "agent_events_parquet"
    published_first_day  = "2025-06-01"
  }

  assert {
    condition     = aws_glue_catalog_table.published_events[0].name == "agent_events_parquet" && aws_glue_catalog_table.published_events[0].parameters["projection.day.range"] == "2025-06-01,NOW"
    error_message = "Table name and projection start follow the variables."
  }
}
