package iceberg

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
)

func ids(n ...int) *int { return &n[0] }

// TestResolve: which table field a record's field is — its name, an old name of a renamed field (the name
// mapping's), or none (a new column) when following the old name would be wrong.
func TestResolve(t *testing.T) {
	str, long := iceberg.PrimitiveTypes.String, iceberg.PrimitiveTypes.Int64
	in := func(fs ...iceberg.NestedField) []iceberg.NestedField { return fs }
	f := func(name string, typ iceberg.Type) iceberg.NestedField {
		return iceberg.NestedField{ID: -1, Name: name, Type: typ}
	}
	for _, tc := range []struct {
		name    string
		table   []iceberg.NestedField
		mapping iceberg.NameMapping
		in      []iceberg.NestedField
		want    string // the table field (id) of each, 0: new
	}{
		{"by name", in(iceberg.NestedField{ID: 1, Name: "a", Type: str}), iceberg.NameMapping{{FieldID: ids(1), Names: []string{"a"}}},
			in(f("a", str), f("b", str)), "[1 0]"},
		{"renamed", in(iceberg.NestedField{ID: 1, Name: "full", Type: str}), iceberg.NameMapping{{FieldID: ids(1), Names: []string{"name", "full"}}},
			in(f("name", str)), "[1]"},
		{"renamed, both names sent", in(iceberg.NestedField{ID: 1, Name: "full", Type: str}), iceberg.NameMapping{{FieldID: ids(1), Names: []string{"name", "full"}}},
			in(f("name", str), f("full", str)), "[0 1]"},
		{"two old names of one field", in(iceberg.NestedField{ID: 1, Name: "c", Type: str}), iceberg.NameMapping{{FieldID: ids(1), Names: []string{"a", "b", "c"}}},
			in(f("a", str), f("b", str)), "[0 0]"},
		{"old name, another type", in(iceberg.NestedField{ID: 1, Name: "y", Type: str}), iceberg.NameMapping{{FieldID: ids(1), Names: []string{"x", "y"}}},
			in(f("x", long)), "[0]"},
		{"old name, a wider type", in(iceberg.NestedField{ID: 1, Name: "y", Type: long}), iceberg.NameMapping{{FieldID: ids(1), Names: []string{"x", "y"}}},
			in(f("x", iceberg.PrimitiveTypes.Int32)), "[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for _, m := range (level{fields: tc.table, mapping: tc.mapping}).resolve(tc.in) {
				if m.ok {
					got = append(got, m.nf.ID)
				} else {
					got = append(got, 0)
				}
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("resolved %v, want %s", got, tc.want)
			}
		})
	}
}

// TestNumberNested: ids of a list of structs whose inner field was renamed, through the mapping.
func TestNumberNested(t *testing.T) {
	elem := &iceberg.StructType{FieldList: []iceberg.NestedField{{ID: 4, Name: "town", Type: iceberg.PrimitiveTypes.String}}}
	s := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64},
		iceberg.NestedField{ID: 2, Name: "places", Type: &iceberg.ListType{ElementID: 3, Element: elem}})
	nm := iceberg.NameMapping{{FieldID: ids(1), Names: []string{"id"}}, {FieldID: ids(2), Names: []string{"places"},
		Fields: []iceberg.MappedField{{FieldID: ids(3), Names: []string{"element"}, Fields: []iceberg.MappedField{{FieldID: ids(4), Names: []string{"city", "town"}}}}}}}
	if !mappingFits(nm, s) {
		t.Fatal("the mapping does not fit")
	}
	cols := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "places", Type: arrow.ListOfField(arrow.Field{Name: "element", Type: arrow.StructOf(arrow.Field{Name: "city", Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true}), Nullable: true}}, nil)
	got, err := withFieldIDs(cols, s, nm, false)
	if err != nil {
		t.Fatal(err)
	}
	inner := got.Field(1).Type.(*arrow.ListType).ElemField()
	city := inner.Type.(*arrow.StructType).Field(0)
	if v, _ := city.Metadata.GetValue("PARQUET:field_id"); v != "4" {
		t.Fatalf("places.element.city numbered %q, want 4 (town's)", v)
	}
	if v, _ := inner.Metadata.GetValue("PARQUET:field_id"); v != "3" {
		t.Fatalf("places.element numbered %q, want 3", v)
	}
}

// TestRepairMapping: a mapping that does not fit (an entry missing) is rebuilt from the schema, keeping the
// old names it gave each field that no other field now has.
func TestRepairMapping(t *testing.T) {
	s := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "full", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 2, Name: "b", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 3, Name: "c", Type: iceberg.PrimitiveTypes.String})
	old := iceberg.NameMapping{{FieldID: ids(1), Names: []string{"name", "full"}}, {FieldID: ids(2), Names: []string{"b", "c"}}}
	if mappingFits(old, s) {
		t.Fatal("a mapping without c, and giving c to b, fits")
	}
	got := repairMapping(old, s)
	if !mappingFits(got, s) || fmt.Sprint(got) != fmt.Sprint(iceberg.NameMapping{{FieldID: ids(1), Names: []string{"full", "name"}}, {FieldID: ids(2), Names: []string{"b"}}, {FieldID: ids(3), Names: []string{"c"}}}) {
		t.Fatalf("repaired %v", got)
	}
}
