// Package parquet turns Avro records into Parquet files through Apache Arrow's pqarrow: the Avro→Arrow
// type mapping, a decoder that reads Avro binary straight into Arrow builders (resolving an older writer
// schema against the file's newer one, as Avro schema resolution does), and a writer that streams row groups
// to a warehouse file.
package parquet

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/minipipe/minipipe/internal/avro"
)

// The Avro → Arrow (and so Parquet) mapping:
//
//	null                      → nullable boolean, always null (Parquet has no null type engines agree on)
//	boolean, int, long        → boolean, int32, int64
//	float, double             → float32, float64
//	bytes / fixed(n)          → binary / fixed_size_binary(n)
//	string, enum              → string (UTF8)
//	record                    → struct
//	array / map               → list / map<string, …>
//	["null", T] (either order) → nullable T;  [T] → T
//	other unions              → struct<member0, member1, …>, the one set being the branch used (as Spark does)
//	date                      → date32
//	time-millis / time-micros → time32(ms) / time64(us): Parquet TIME, not UTC-adjusted (a time of day)
//	timestamp-millis / -micros → timestamp(ms, UTC) / timestamp(us, UTC): Parquet TIMESTAMP, isAdjustedToUTC
//	timestamp-nanos           → timestamp(us, UTC): never nanos, which Spark, Athena and older Hive cannot read
//	local-timestamp-*         → timestamp (ms or us) without a zone: Parquet TIMESTAMP, not UTC-adjusted
//	decimal(p, s)             → decimal128(p, s) for p ≤ 38; wider ones as exact text (engines stop at 38)
//	uuid                      → string
//	duration                  → fixed_size_binary(12)
//
// Every column is nullable: columns come and go as schemas evolve, and Hive, Trino and Spark treat all
// columns as nullable anyway.

// ArrowSchema maps an Avro record schema to the Arrow schema of the file's columns. Columns named in drop
// (partition fields, which live in the directory names) are left out.
func ArrowSchema(s *avro.Schema, drop map[string]bool) (*arrow.Schema, error) {
	if s.Type != avro.Record {
		return nil, fmt.Errorf("table rows need an Avro record schema, not %s", s.Type)
	}
	fields := make([]arrow.Field, 0, len(s.Fields))
	for _, f := range s.Fields {
		if drop[f.Name] {
			continue
		}
		dt, err := ArrowType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		fields = append(fields, arrow.Field{Name: f.Name, Type: dt, Nullable: true})
	}
	return arrow.NewSchema(fields, nil), nil
}

// ArrowType maps one Avro type.
func ArrowType(s *avro.Schema) (arrow.DataType, error) {
	return arrowType(s, map[*avro.Schema]bool{})
}

func arrowType(s *avro.Schema, visiting map[*avro.Schema]bool) (arrow.DataType, error) {
	switch s.LogicalType {
	case "date":
		return arrow.FixedWidthTypes.Date32, nil
	case "time-millis":
		return arrow.FixedWidthTypes.Time32ms, nil
	case "time-micros":
		return arrow.FixedWidthTypes.Time64us, nil
	case "timestamp-millis":
		return &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, nil
	case "timestamp-micros", "timestamp-nanos":
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, nil
	case "local-timestamp-millis":
		return &arrow.TimestampType{Unit: arrow.Millisecond}, nil
	case "local-timestamp-micros", "local-timestamp-nanos":
		return &arrow.TimestampType{Unit: arrow.Microsecond}, nil
	case "decimal":
		if s.Precision <= 38 {
			return &arrow.Decimal128Type{Precision: int32(s.Precision), Scale: int32(s.Scale)}, nil
		}
		// Hive, Trino and Spark stop at 38 digits: wider decimals are kept exact as text, up to a bound that
		// keeps the cost of rendering one small.
		if s.Precision > avro.MaxExactDecimalPrecision {
			return nil, fmt.Errorf("decimal precision %d is above %d, the widest minipipe writes", s.Precision, avro.MaxExactDecimalPrecision)
		}
		return arrow.BinaryTypes.String, nil
	case "uuid":
		return arrow.BinaryTypes.String, nil
	}
	switch s.Type {
	case avro.Null:
		return arrow.FixedWidthTypes.Boolean, nil
	case avro.Boolean:
		return arrow.FixedWidthTypes.Boolean, nil
	case avro.Int:
		return arrow.PrimitiveTypes.Int32, nil
	case avro.Long:
		return arrow.PrimitiveTypes.Int64, nil
	case avro.Float:
		return arrow.PrimitiveTypes.Float32, nil
	case avro.Double:
		return arrow.PrimitiveTypes.Float64, nil
	case avro.Bytes:
		return arrow.BinaryTypes.Binary, nil
	case avro.String, avro.Enum:
		return arrow.BinaryTypes.String, nil
	case avro.Fixed:
		return &arrow.FixedSizeBinaryType{ByteWidth: s.Size}, nil
	case avro.Array:
		it, err := arrowType(s.Items, visiting)
		if err != nil {
			return nil, err
		}
		return arrow.ListOfField(arrow.Field{Name: "element", Type: it, Nullable: true}), nil
	case avro.Map:
		vt, err := arrowType(s.Values, visiting)
		if err != nil {
			return nil, err
		}
		mt := arrow.MapOf(arrow.BinaryTypes.String, vt)
		mt.SetItemNullable(true)
		return mt, nil
	case avro.Record:
		if visiting[s] {
			return nil, fmt.Errorf("recursive type %s cannot be a Parquet column", s.FullName())
		}
		visiting[s] = true
		defer delete(visiting, s)
		fields := make([]arrow.Field, len(s.Fields))
		for i, f := range s.Fields {
			dt, err := arrowType(f.Type, visiting)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", s.Name, f.Name, err)
			}
			fields[i] = arrow.Field{Name: f.Name, Type: dt, Nullable: true}
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("record %s has no fields; Parquet cannot store an empty group", s.FullName())
		}
		return arrow.StructOf(fields...), nil
	case avro.Union:
		if t := s.NonNull(); t != nil {
			return arrowType(t, visiting)
		}
		var fields []arrow.Field
		for _, b := range s.Branches {
			if b.Type == avro.Null {
				continue
			}
			dt, err := arrowType(b, visiting)
			if err != nil {
				return nil, err
			}
			fields = append(fields, arrow.Field{Name: fmt.Sprintf("member%d", len(fields)), Type: dt, Nullable: true})
		}
		if len(fields) == 0 { // ["null"]
			return arrow.FixedWidthTypes.Boolean, nil
		}
		return arrow.StructOf(fields...), nil
	}
	return nil, fmt.Errorf("unsupported Avro type %s", s.Type)
}

// numberRank orders the numeric column types by width (int, long, float, double); 0 for the others.
func numberRank(t arrow.DataType) int {
	switch t.ID() {
	case arrow.INT32:
		return 1
	case arrow.INT64:
		return 2
	case arrow.FLOAT32:
		return 3
	case arrow.FLOAT64:
		return 4
	}
	return 0
}

// Mergeable reports whether files with these two column types can make one table column: the same type,
// or a numeric widening query engines read across files (int → long, float → double, int or long →
// double).
func Mergeable(a, b arrow.DataType) bool {
	if arrow.TypeEqual(a, b) {
		return true
	}
	if numberRank(a) > 0 && numberRank(b) > 0 {
		return true
	}
	switch a.ID() {
	case arrow.STRUCT:
		sa, sb := a.(*arrow.StructType), b.(*arrow.StructType)
		if b.ID() != arrow.STRUCT {
			return false
		}
		for _, f := range sa.Fields() {
			if i, ok := sb.FieldIdx(f.Name); ok && !Mergeable(f.Type, sb.Field(i).Type) {
				return false
			}
		}
		return true
	case arrow.LIST:
		if b.ID() != arrow.LIST {
			return false
		}
		return Mergeable(a.(*arrow.ListType).Elem(), b.(*arrow.ListType).Elem())
	case arrow.MAP:
		if b.ID() != arrow.MAP {
			return false
		}
		return Mergeable(a.(*arrow.MapType).ItemType(), b.(*arrow.MapType).ItemType())
	}
	return false
}
