# minipipe — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
GOFLAGS ?=
export GOFLAGS
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/minipipe/minipipe/topology.Version=$(VERSION)

.PHONY: all build run kafka-up kafka-down test test-unit vet fuzz bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/minipipe ./cmd/minipipe

## run: start a real single-node Kafka on 127.0.0.1:9092 (fetched from Maven Central once) and minipipe on it.
run: build kafka-up
	./bin/minipipe run --brokers 127.0.0.1:9092 --data-dir ./data

kafka-up:
	deploy/kafka/kafka.sh up

kafka-down:
	deploy/kafka/kafka.sh down

## test: every test, against real services started by the project's scripts.
test: build
	deploy/test.sh

## test-unit: the in-process tests only (no Java needed).
test-unit:
	MINIPIPE_SKIP_REAL=1 $(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

## fuzz: run every fuzz target for FUZZTIME each (the seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	deploy/fuzz.sh $(FUZZTIME)

## bench: REST produce throughput and latency against a real broker; prints the machine it ran on.
bench: build
	deploy/bench.sh

clean:
	rm -rf bin
