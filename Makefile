# minipipe — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
GOFLAGS ?=
export GOFLAGS
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/minipipe/minipipe/topology.Version=$(VERSION)

.PHONY: all build run run-full run-s3 run-iceberg run-iceberg-rest kafka-up kafka-down stack-up stack-down test test-unit vet fuzz bench screenshots image deploy-check s3-up s3-down clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/minipipe ./cmd/minipipe

## run: start a real single-node Kafka on 127.0.0.1:9092 (fetched from Maven Central once) and minipipe on it.
run: build kafka-up
	./bin/minipipe run --brokers 127.0.0.1:9092 --data-dir ./data

## run-full: minipipe on the seed's whole stack (make stack-up): Parquet on HDFS, tables in the Hive Metastore.
run-full: build stack-up
	./bin/minipipe run --brokers 127.0.0.1:9092 --data-dir ./data-full \
	  --warehouse hdfs://127.0.0.1:8020/warehouse --catalog hive --hive-metastore thrift://127.0.0.1:9083 \
	  --trino http://127.0.0.1:8090

## run-s3: minipipe on the same stack with its warehouse in the S3 server's bucket (s3a:// tables in the metastore).
run-s3: build stack-up
	. ./.state/s3/env && ./bin/minipipe run --brokers 127.0.0.1:9092 --data-dir ./data-s3 \
	  --warehouse s3://minipipe/warehouse --s3-endpoint http://127.0.0.1:9000 --catalog hive \
	  --hive-metastore thrift://127.0.0.1:9083 --trino http://127.0.0.1:8090

## run-iceberg: minipipe on the same stack writing Iceberg tables (HDFS; Trino's iceberg catalog reads them).
run-iceberg: build stack-up
	./bin/minipipe run --brokers 127.0.0.1:9092 --data-dir ./data-iceberg \
	  --warehouse hdfs://127.0.0.1:8020/iceberg --catalog hive --hive-metastore thrift://127.0.0.1:9083 \
	  --hive-database iceberg_tables --table-format iceberg --trino http://127.0.0.1:8090 --trino-catalog iceberg

## run-iceberg-rest: the same with the Iceberg tables in a REST catalog (Iceberg's own test server on
## http://127.0.0.1:8181, from Maven Central); Trino's iceberg_rest catalog reads them.
run-iceberg-rest: build stack-up
	./bin/minipipe run --brokers 127.0.0.1:9092 --data-dir ./data-iceberg-rest \
	  --warehouse hdfs://127.0.0.1:8020/iceberg-rest --hive-database iceberg_rest_tables --table-format iceberg \
	  --iceberg-catalog rest --iceberg-rest-uri http://127.0.0.1:8181 --trino http://127.0.0.1:8090 --trino-catalog iceberg_rest

kafka-up:
	deploy/kafka/kafka.sh up

kafka-down:
	deploy/kafka/kafka.sh down

## stack-up: Kafka (127.0.0.1:9092), HDFS (NameNode RPC 127.0.0.1:8020), an S3 server (http://127.0.0.1:9000,
## bucket minipipe), the Hive Metastore (thrift://127.0.0.1:9083) and Trino (http://127.0.0.1:8090), each from
## its registry, data under ./.state; the metastore and Trino reach both HDFS and the S3 server.
stack-up:
	deploy/s3/s3.sh up
	deploy/kafka/kafka.sh up
	deploy/hdfs/hdfs.sh up
	deploy/hms/hms.sh up
	deploy/iceberg-rest/rest.sh up
	deploy/trino/trino.sh up

## s3-up: an S3-compatible server (moto's server mode, from PyPI) on http://127.0.0.1:9000 with the bucket
## minipipe; `source .state/s3/env` gives its AWS_* credentials.
s3-up:
	deploy/s3/s3.sh up

s3-down:
	deploy/s3/s3.sh down

stack-down:
	-deploy/trino/trino.sh down
	-deploy/iceberg-rest/rest.sh down
	-deploy/hms/hms.sh down
	-deploy/hdfs/hdfs.sh down
	-deploy/kafka/kafka.sh down
	-deploy/s3/s3.sh down

## test: every test, against real services started by the project's scripts.
test: build
	deploy/test.sh

## test-unit: the in-process tests only (no Java needed).
test-unit:
	MINIPIPE_SKIP_REAL=1 $(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

## screenshots: the console's browser test (Debian's Chromium, a real Kafka it starts), keeping its screenshots
## in docs/console for the README.
screenshots:
	MINIPIPE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run TestConsoleInBrowser ./topology/

## image: minipipe's OCI image without a container engine (Debian packages for the base, go-containerregistry):
## an OCI layout in bin/image and bin/minipipe-image.tar. Push: see the README's "Deploying".
image:
	deploy/image.sh

## deploy-check: the Helm chart linted and rendered (Helm pinned, from the Go module proxy) for its defaults and
## examples, every object decoded strictly into the Kubernetes types, the policies checked; the systemd unit
## verified; the image built and run. (All part of make test as well.)
deploy-check:
	$(GO) test -count=1 ./deploy/...
	$(GO) test -count=1 -run 'TestSystemdUnit' ./topology/

## fuzz: run every fuzz target for FUZZTIME each (the seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	deploy/fuzz.sh $(FUZZTIME)

## bench: REST produce throughput and latency against a real broker; prints the machine it ran on.
bench: build
	deploy/bench.sh

clean:
	rm -rf bin
