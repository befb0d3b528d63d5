// Package benchdata holds the records the benchmarks use (make bench's load and the writer's go test
// benchmark alike).
package benchdata

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WideSchema is the realistic record of the Redpanda Connect and Confluent S3-sink benchmarks: about 1.1 KB
// in 30 fields (10 strings of ~100 characters, 10 longs, 5 doubles, 4 booleans, a timestamp-millis).
var WideSchema = func() string {
	var f []string
	for i := 0; i < 10; i++ {
		f = append(f, fmt.Sprintf(`{"name":"s%d","type":"string"}`, i), fmt.Sprintf(`{"name":"l%d","type":"long"}`, i))
	}
	for i := 0; i < 5; i++ {
		f = append(f, fmt.Sprintf(`{"name":"d%d","type":"double"}`, i))
	}
	for i := 0; i < 4; i++ {
		f = append(f, fmt.Sprintf(`{"name":"b%d","type":"boolean"}`, i))
	}
	f = append(f, `{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}`)
	return `{"type":"record","name":"Wide","namespace":"bench","fields":[` + strings.Join(f, ",") + `]}`
}()

// WideDatum is record i of WideSchema in Avro's JSON encoding: strings of ~100 characters drawn from a
// vocabulary (as log lines, URLs and user agents repeat), numbers that vary.
func WideDatum(i int) string {
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"}
	var b strings.Builder
	b.WriteByte('{')
	for j := 0; j < 10; j++ {
		var s strings.Builder
		for k := 0; s.Len() < 100; k++ {
			s.WriteString(words[(i*7+j*3+k*k)%len(words)])
			s.WriteByte('-')
			s.WriteString(strconv.Itoa((i + k*j) % 997))
			s.WriteByte(' ')
		}
		fmt.Fprintf(&b, `"s%d":%q,"l%d":%d,`, j, s.String(), j, int64(i)*int64(j+1)*7919)
	}
	for j := 0; j < 5; j++ {
		fmt.Fprintf(&b, `"d%d":%g,`, j, float64(i%100000)/float64(j+3))
	}
	for j := 0; j < 4; j++ {
		fmt.Fprintf(&b, `"b%d":%t,`, j, (i>>j)&1 == 1)
	}
	fmt.Fprintf(&b, `"ts":%d}`, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).UnixMilli()+int64(i))
	return b.String()
}
