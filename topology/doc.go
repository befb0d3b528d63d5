// Package topology is minipipe assembled: the one declaration of its processors (graph.go: Declare, from
// which every goka group graph that runs is built and which `minipipe topology` prints), the pipeline that
// runs them (pipeline.go: an ingest processor per source topic and table generation, the commit processor,
// each supervised), the app around it (app.go: the REST Proxy and Schema Registry APIs, health, metrics and
// /topology, Kafka and warehouse identity checks), the configuration (config.go: flags, environment, file),
// the table rules (tables.go), replays (replay.go) and the CLI (cli.go, called by cmd/minipipe).
//
// Data flows down the packages: cmd → topology → processors (edge, registry, ingest, validate, bucket,
// commit) → sinks (fs, hdfs, parquet, manifest, hive) → state; the models several of them share (Avro,
// Kafka clients, the warehouse layout, HTTP helpers) live in internal/.
package topology
