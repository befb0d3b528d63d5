// Command minipipe serves Confluent's REST Proxy and Schema Registry APIs and turns Kafka topics into
// Parquet tables, committed exactly once. See the README.
package main

import (
	"os"

	"github.com/minipipe/minipipe/topology"
)

func main() { os.Exit(topology.Main(os.Args[1:], os.Stdout, os.Stderr)) }
