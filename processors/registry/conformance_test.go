package registry_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/minipipe/minipipe/testkit"
)

const ctV1 = "application/vnd.schemaregistry.v1+json"

// step is one request of the conformance walk and what Confluent's Schema Registry answers to it.
type step struct {
	name   string
	method string
	path   string
	body   string
	status int
	code   int    // expected error_code (0: not an error)
	want   string // expected JSON body, compared structurally ("" to skip)
	check  func(t *testing.T, body any)
	hdr    []string
}

func schemaBody(schema string, extra ...string) string {
	m := map[string]any{"schema": schema}
	for i := 0; i+1 < len(extra); i += 2 {
		var v any
		if err := json.Unmarshal([]byte(extra[i+1]), &v); err != nil {
			panic(err)
		}
		m[extra[i]] = v
	}
	return testkit.MustJSON(m)
}

func runSteps(t *testing.T, base string, steps []step) {
	t.Helper()
	for _, s := range steps {
		hdr := s.hdr
		if hdr == nil && s.body != "" {
			hdr = []string{"Content-Type", ctV1}
		}
		resp := testkit.Do(t, s.method, base+s.path, s.body, hdr...)
		if resp.Status != s.status {
			t.Errorf("%s: %s %s: status %d, want %d: %s", s.name, s.method, s.path, resp.Status, s.status, resp.Body)
			continue
		}
		if s.code != 0 && resp.ErrorCode() != s.code {
			t.Errorf("%s: %s %s: error_code %d, want %d: %s", s.name, s.method, s.path, resp.ErrorCode(), s.code, resp.Body)
			continue
		}
		if s.code == 0 && resp.Status >= 400 {
			continue
		}
		if s.want != "" {
			var want any
			if err := json.Unmarshal([]byte(s.want), &want); err != nil {
				t.Fatalf("%s: bad expectation: %v", s.name, err)
			}
			if got := resp.JSON(t); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s %s:\n got %s\nwant %s", s.name, s.method, s.path, resp.Body, s.want)
			}
		}
		if s.check != nil && resp.Status < 400 {
			s.check(t, resp.JSON(t))
		}
	}
}

// TestConformance walks every Schema Registry endpoint and error code of Confluent's API
// (shared/reference/restproxy-registry.md §2) against a minipipe running on a real Kafka broker.
func TestConformance(t *testing.T) {
	brokers := testkit.Kafka(t)
	app := testkit.StartApp(t, testkit.TestConfig(t, brokers))
	base := app.Registry

	str := `"string"`
	user1 := `{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}`
	user2 := `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null}]}`
	user3 := `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null},{"name":"age","type":"int"}]}`

	t.Run("empty registry", func(t *testing.T) {
		runSteps(t, base, []step{
			{name: "root", method: "GET", path: "/", status: 200, want: `{}`},
			{name: "default config", method: "GET", path: "/config", status: 200, want: `{"compatibilityLevel":"BACKWARD"}`},
			{name: "no subjects", method: "GET", path: "/subjects", status: 200, want: `[]`},
			{name: "types", method: "GET", path: "/schemas/types", status: 200, want: `["AVRO"]`},
			{name: "default mode", method: "GET", path: "/mode", status: 200, want: `{"mode":"READWRITE"}`},
			{name: "no schemas", method: "GET", path: "/schemas", status: 200, want: `[]`},
		})
	})

	t.Run("register and read", func(t *testing.T) {
		runSteps(t, base, []step{
			{name: "register", method: "POST", path: "/subjects/s1-value/versions", body: schemaBody(str), status: 200, want: `{"id":1}`},
			{name: "re-register is idempotent", method: "POST", path: "/subjects/s1-value/versions", body: schemaBody(str), status: 200, want: `{"id":1}`},
			{name: "same schema, other spelling", method: "POST", path: "/subjects/s1-value/versions", body: schemaBody(`{"type": "string"}`), status: 200, want: `{"id":1}`},
			{name: "same schema, other subject: same id", method: "POST", path: "/subjects/s2-value/versions", body: schemaBody(str), status: 200, want: `{"id":1}`},
			{name: "unknown fields are ignored", method: "POST", path: "/subjects/s1-value/versions", body: schemaBody(str, "metadata", `{"properties":{"a":"b"}}`, "ruleSet", `{"domainRules":[]}`, "schemaType", `"AVRO"`), status: 200, want: `{"id":1}`},
			{name: "other schema, new id", method: "POST", path: "/subjects/user-value/versions", body: schemaBody(user1), status: 200, want: `{"id":2}`},
			{name: "schema by id", method: "GET", path: "/schemas/ids/1", status: 200, want: `{"schema":"\"string\""}`},
			{name: "schema by id with fetchMaxId", method: "GET", path: "/schemas/ids/1?fetchMaxId=true", status: 200, want: `{"schema":"\"string\"","maxId":2}`},
			{name: "raw schema by id", method: "GET", path: "/schemas/ids/2/schema", status: 200, want: user1},
			{name: "unknown id", method: "GET", path: "/schemas/ids/999", status: 404, code: 40403},
			{name: "malformed id", method: "GET", path: "/schemas/ids/abc", status: 404, code: 40403},
			{name: "versions of an id", method: "GET", path: "/schemas/ids/1/versions", status: 200, want: `[{"subject":"s1-value","version":1},{"subject":"s2-value","version":1}]`},
			{name: "subjects of an id", method: "GET", path: "/schemas/ids/1/subjects", status: 200, want: `["s1-value","s2-value"]`},
			{name: "subjects", method: "GET", path: "/subjects", status: 200, want: `["s1-value","s2-value","user-value"]`},
			{name: "subjects by prefix", method: "GET", path: "/subjects?subjectPrefix=s", status: 200, want: `["s1-value","s2-value"]`},
			{name: "versions", method: "GET", path: "/subjects/s1-value/versions", status: 200, want: `[1]`},
			{name: "versions of unknown subject", method: "GET", path: "/subjects/nope/versions", status: 404, code: 40401},
			{name: "version", method: "GET", path: "/subjects/s1-value/versions/1", status: 200, want: `{"subject":"s1-value","version":1,"id":1,"schema":"\"string\""}`},
			{name: "latest", method: "GET", path: "/subjects/s1-value/versions/latest", status: 200, want: `{"subject":"s1-value","version":1,"id":1,"schema":"\"string\""}`},
			{name: "-1 is latest", method: "GET", path: "/subjects/s1-value/versions/-1", status: 200, want: `{"subject":"s1-value","version":1,"id":1,"schema":"\"string\""}`},
			{name: "missing version", method: "GET", path: "/subjects/s1-value/versions/2", status: 404, code: 40402},
			{name: "version 0", method: "GET", path: "/subjects/s1-value/versions/0", status: 422, code: 42202},
			{name: "version not a number", method: "GET", path: "/subjects/s1-value/versions/abc", status: 422, code: 42202},
			{name: "version too large", method: "GET", path: "/subjects/s1-value/versions/2147483648", status: 422, code: 42202},
			{name: "version of unknown subject", method: "GET", path: "/subjects/nope/versions/1", status: 404, code: 40401},
			{name: "raw schema of a version", method: "GET", path: "/subjects/user-value/versions/1/schema", status: 200, want: user1},
			{name: "lookup", method: "POST", path: "/subjects/user-value", body: schemaBody(user1), status: 200,
				want: `{"subject":"user-value","version":1,"id":2,"schema":` + testkit.MustJSON(user1) + `}`},
			{name: "lookup of a schema not under the subject", method: "POST", path: "/subjects/user-value", body: schemaBody(str), status: 404, code: 40403},
			{name: "lookup in unknown subject", method: "POST", path: "/subjects/nope", body: schemaBody(str), status: 404, code: 40401},
			{name: "lookup of an invalid schema", method: "POST", path: "/subjects/user-value", body: schemaBody(`{"type":"recrod"}`), status: 422, code: 42201},
			{name: "list schemas", method: "GET", path: "/schemas?subjectPrefix=user", status: 200,
				want: `[{"subject":"user-value","version":1,"id":2,"schema":` + testkit.MustJSON(user1) + `}]`},
		})
	})

	t.Run("compatibility", func(t *testing.T) {
		runSteps(t, base, []step{
			{name: "compatible evolution", method: "POST", path: "/subjects/user-value/versions", body: schemaBody(user2), status: 200, want: `{"id":3}`},
			{name: "check compatible against latest", method: "POST", path: "/compatibility/subjects/user-value/versions/latest", body: schemaBody(user2), status: 200, want: `{"is_compatible":true}`},
			{name: "check compatible, verbose", method: "POST", path: "/compatibility/subjects/user-value/versions/latest?verbose=true", body: schemaBody(user2), status: 200, want: `{"is_compatible":true,"messages":[]}`},
			{name: "check incompatible", method: "POST", path: "/compatibility/subjects/user-value/versions/latest", body: schemaBody(user3), status: 200, want: `{"is_compatible":false}`},
			{name: "check incompatible, verbose", method: "POST", path: "/compatibility/subjects/user-value/versions/latest?verbose=true", body: schemaBody(user3), status: 200,
				check: func(t *testing.T, body any) {
					m := body.(map[string]any)
					msgs, _ := m["messages"].([]any)
					if m["is_compatible"] != false || len(msgs) == 0 || !strings.Contains(fmt.Sprint(msgs[0]), "READER_FIELD_MISSING_DEFAULT_VALUE") {
						t.Errorf("verbose incompatibility: %v", body)
					}
				}},
			{name: "check against a given version", method: "POST", path: "/compatibility/subjects/user-value/versions/1", body: schemaBody(user2), status: 200, want: `{"is_compatible":true}`},
			{name: "check against all versions", method: "POST", path: "/compatibility/subjects/user-value/versions", body: schemaBody(user2), status: 200, want: `{"is_compatible":true}`},
			{name: "check against a missing version", method: "POST", path: "/compatibility/subjects/user-value/versions/99", body: schemaBody(user2), status: 404, code: 40402},
			{name: "check against an invalid version", method: "POST", path: "/compatibility/subjects/user-value/versions/x", body: schemaBody(user2), status: 422, code: 42202},
			{name: "check an invalid schema", method: "POST", path: "/compatibility/subjects/user-value/versions/latest", body: schemaBody(`{"type":"recrod"}`), status: 422, code: 42201},
			{name: "check latest of an empty subject", method: "POST", path: "/compatibility/subjects/empty-value/versions/latest", body: schemaBody(user1), status: 200, want: `{"is_compatible":true}`},
			{name: "check a version of an unknown subject", method: "POST", path: "/compatibility/subjects/empty-value/versions/1", body: schemaBody(user1), status: 404, code: 40401},
			{name: "register incompatible", method: "POST", path: "/subjects/user-value/versions", body: schemaBody(user3), status: 409, code: 409,
				check: nil},
		})
		resp := testkit.Do(t, "POST", base+"/subjects/user-value/versions", schemaBody(user3), "Content-Type", ctV1)
		if !strings.Contains(string(resp.Body), "READER_FIELD_MISSING_DEFAULT_VALUE") || !strings.Contains(string(resp.Body), "incompatible with an earlier schema") {
			t.Errorf("409 message should say why: %s", resp.Body)
		}
	})

	t.Run("config", func(t *testing.T) {
		runSteps(t, base, []step{
			{name: "set global", method: "PUT", path: "/config", body: `{"compatibility":"FULL"}`, status: 200, want: `{"compatibility":"FULL"}`},
			{name: "get global", method: "GET", path: "/config", status: 200, want: `{"compatibilityLevel":"FULL"}`},
			{name: "case-insensitive level", method: "PUT", path: "/config", body: `{"compatibility":"backward_transitive"}`, status: 200, want: `{"compatibility":"BACKWARD_TRANSITIVE"}`},
			{name: "invalid level", method: "PUT", path: "/config", body: `{"compatibility":"SOMETIMES"}`, status: 422, code: 42203},
			{name: "subject config", method: "PUT", path: "/config/user-value", body: `{"compatibility":"NONE"}`, status: 200, want: `{"compatibility":"NONE"}`},
			{name: "get subject config", method: "GET", path: "/config/user-value", status: 200, want: `{"compatibilityLevel":"NONE"}`},
			{name: "subject without config", method: "GET", path: "/config/other-value", status: 404, code: 40408},
			{name: "subject without config, default to global", method: "GET", path: "/config/other-value?defaultToGlobal=true", status: 200, want: `{"compatibilityLevel":"BACKWARD_TRANSITIVE"}`},
			{name: "NONE lets anything in", method: "POST", path: "/subjects/user-value/versions", body: schemaBody(user3), status: 200, want: `{"id":4}`},
			{name: "delete subject config", method: "DELETE", path: "/config/user-value", status: 200, want: `{"compatibilityLevel":"NONE"}`},
			{name: "delete missing subject config", method: "DELETE", path: "/config/user-value", status: 404, code: 40401},
			{name: "reset global", method: "DELETE", path: "/config", status: 200, want: `{"compatibilityLevel":"BACKWARD_TRANSITIVE"}`},
			{name: "global is the default again", method: "GET", path: "/config", status: 200, want: `{"compatibilityLevel":"BACKWARD"}`},
			{name: "normalize flag", method: "PUT", path: "/config/norm-value", body: `{"normalize":true}`, status: 200, want: `{"normalize":true}`},
		})
	})

	t.Run("deletes", func(t *testing.T) {
		runSteps(t, base, []step{
			{name: "soft delete a version", method: "DELETE", path: "/subjects/s2-value/versions/1", status: 200, want: `1`},
			{name: "soft delete it again", method: "DELETE", path: "/subjects/s2-value/versions/1", status: 404, code: 40406},
			{name: "versions hide soft-deleted", method: "GET", path: "/subjects/s2-value/versions", status: 404, code: 40401},
			{name: "versions with deleted", method: "GET", path: "/subjects/s2-value/versions?deleted=true", status: 200, want: `[1]`},
			{name: "deleted version readable with deleted", method: "GET", path: "/subjects/s2-value/versions/1?deleted=true", status: 200, want: `{"subject":"s2-value","version":1,"id":1,"schema":"\"string\""}`},
			{name: "subjects hide soft-deleted", method: "GET", path: "/subjects", status: 200, want: `["s1-value","user-value"]`},
			{name: "subjects with deleted", method: "GET", path: "/subjects?deleted=true", status: 200, want: `["s1-value","s2-value","user-value"]`},
			{name: "subjects deleted only", method: "GET", path: "/subjects?deletedOnly=true", status: 200, want: `["s2-value"]`},
			{name: "hard delete a version", method: "DELETE", path: "/subjects/s2-value/versions/1?permanent=true", status: 200, want: `1`},
			{name: "hard deleted is gone", method: "GET", path: "/subjects/s2-value/versions?deleted=true", status: 404, code: 40401},
			{name: "hard delete without soft delete", method: "DELETE", path: "/subjects/user-value/versions/1?permanent=true", status: 404, code: 40407},
			{name: "soft delete a version twice", method: "DELETE", path: "/subjects/user-value/versions/1", status: 200, want: `1`},
			{name: "…second time", method: "DELETE", path: "/subjects/user-value/versions/1", status: 404, code: 40406},
			{name: "delete latest", method: "DELETE", path: "/subjects/user-value/versions/latest", status: 200, want: `3`},
			{name: "delete a missing version", method: "DELETE", path: "/subjects/user-value/versions/42", status: 404, code: 40402},
			{name: "delete an invalid version", method: "DELETE", path: "/subjects/user-value/versions/zero", status: 422, code: 42202},
			{name: "delete a version of an unknown subject", method: "DELETE", path: "/subjects/nope/versions/1", status: 404, code: 40401},
			{name: "hard delete subject before soft", method: "DELETE", path: "/subjects/s1-value?permanent=true", status: 404, code: 40405},
			{name: "soft delete subject", method: "DELETE", path: "/subjects/s1-value", status: 200, want: `[1]`},
			{name: "soft delete subject again", method: "DELETE", path: "/subjects/s1-value", status: 404, code: 40404},
			{name: "schema still readable after soft delete", method: "GET", path: "/schemas/ids/1", status: 200, want: `{"schema":"\"string\""}`},
			{name: "hard delete subject", method: "DELETE", path: "/subjects/s1-value?permanent=true", status: 200, want: `[1]`},
			{name: "schema gone once no version uses it", method: "GET", path: "/schemas/ids/1", status: 404, code: 40403},
			{name: "delete unknown subject", method: "DELETE", path: "/subjects/nope", status: 404, code: 40401},
			{name: "ids are stable: the same schema gets its old id back", method: "POST", path: "/subjects/s1-value/versions", body: schemaBody(str), status: 200, want: `{"id":1}`},
			{name: "versions restart after a hard delete", method: "GET", path: "/subjects/s1-value/versions", status: 200, want: `[1]`},
			{name: "new version after soft delete keeps counting", method: "POST", path: "/subjects/user-value/versions", body: schemaBody(user1), status: 200, want: `{"id":2}`},
			{name: "…as version 4", method: "GET", path: "/subjects/user-value/versions", status: 200, want: `[2,4]`},
		})
	})

	t.Run("references", func(t *testing.T) {
		addr := `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}`
		person := `{"type":"record","name":"Person","namespace":"com.acme","fields":[{"name":"name","type":"string"},{"name":"home","type":"Address"}]}`
		refs := `[{"name":"com.acme.Address","subject":"addr-value","version":1}]`
		var personID float64
		runSteps(t, base, []step{
			{name: "register the referenced schema", method: "POST", path: "/subjects/addr-value/versions", body: schemaBody(addr), status: 200},
			{name: "undefined name without references", method: "POST", path: "/subjects/person-value/versions", body: schemaBody(person), status: 422, code: 42201},
			{name: "register with a reference", method: "POST", path: "/subjects/person-value/versions", body: schemaBody(person, "references", refs), status: 200,
				check: func(t *testing.T, body any) { personID = body.(map[string]any)["id"].(float64) }},
			{name: "reference to a missing version", method: "POST", path: "/subjects/person2-value/versions", body: schemaBody(person, "references", `[{"name":"com.acme.Address","subject":"addr-value","version":9}]`), status: 422, code: 42201},
			{name: "the version lists its references", method: "GET", path: "/subjects/person-value/versions/1", status: 200,
				check: func(t *testing.T, body any) {
					if fmt.Sprint(body.(map[string]any)["references"]) != "[map[name:com.acme.Address subject:addr-value version:1]]" {
						t.Errorf("references: %v", body)
					}
				}},
			{name: "a referenced version cannot be deleted", method: "DELETE", path: "/subjects/addr-value/versions/1", status: 422, code: 42206},
		})
		resp := testkit.Do(t, "GET", base+"/subjects/addr-value/versions/1/referencedby", "")
		if resp.Status != 200 || string(resp.Body) != fmt.Sprintf("[%d]", int(personID)) {
			t.Errorf("referencedby: %d %s (person id %v)", resp.Status, resp.Body, personID)
		}
	})

	t.Run("normalize", func(t *testing.T) {
		a := `{"type":"record","name":"N","namespace":"x","fields":[{"name":"a","type":"int"}],"aliases":["B","A"]}`
		b := `{"name":"x.N","type":"record","aliases":["x.A","x.B"],"fields":[{"type":"int","name":"a"}]}`
		var idA float64
		runSteps(t, base, []step{
			{name: "register normalized", method: "POST", path: "/subjects/n1-value/versions?normalize=true", body: schemaBody(a), status: 200,
				check: func(t *testing.T, body any) { idA = body.(map[string]any)["id"].(float64) }},
			{name: "an equivalent spelling gets the same id", method: "POST", path: "/subjects/n1-value/versions?normalize=true", body: schemaBody(b), status: 200,
				check: func(t *testing.T, body any) {
					if body.(map[string]any)["id"].(float64) != idA {
						t.Errorf("normalized ids differ: %v vs %v", body, idA)
					}
				}},
			{name: "subject configured to normalize", method: "POST", path: "/subjects/norm-value/versions", body: schemaBody(a), status: 200},
			{name: "…finds the equivalent spelling", method: "POST", path: "/subjects/norm-value", body: schemaBody(b), status: 200},
		})
	})

	t.Run("mode", func(t *testing.T) {
		runSteps(t, base, []step{
			{name: "subject read-only", method: "PUT", path: "/mode/ro-value", body: `{"mode":"READONLY"}`, status: 200, want: `{"mode":"READONLY"}`},
			{name: "get subject mode", method: "GET", path: "/mode/ro-value", status: 200, want: `{"mode":"READONLY"}`},
			{name: "writes refused", method: "POST", path: "/subjects/ro-value/versions", body: schemaBody(str), status: 422, code: 42205},
			{name: "invalid mode", method: "PUT", path: "/mode", body: `{"mode":"SOMETIMES"}`, status: 422, code: 42204},
			{name: "import needs an empty registry", method: "PUT", path: "/mode", body: `{"mode":"IMPORT"}`, status: 422, code: 42205},
			{name: "subject without a mode", method: "GET", path: "/mode/other-value", status: 404, code: 40409},
			{name: "delete subject mode", method: "DELETE", path: "/mode/ro-value", status: 200, want: `{"mode":"READONLY"}`},
			{name: "writes allowed again", method: "POST", path: "/subjects/ro-value/versions", body: schemaBody(str), status: 200},
			{name: "explicit id outside IMPORT", method: "POST", path: "/subjects/ro-value/versions", body: schemaBody(`"long"`, "id", "77"), status: 422, code: 42205},
			{name: "import mode on an empty subject", method: "PUT", path: "/mode/imp-value", body: `{"mode":"IMPORT"}`, status: 200},
			{name: "import with an id", method: "POST", path: "/subjects/imp-value/versions", body: schemaBody(`"bytes"`, "id", "100", "version", "3"), status: 200, want: `{"id":100}`},
			{name: "imported version", method: "GET", path: "/subjects/imp-value/versions/3", status: 200, want: `{"subject":"imp-value","version":3,"id":100,"schema":"\"bytes\""}`},
			{name: "import an id already taken", method: "POST", path: "/subjects/imp-value/versions", body: schemaBody(`"float"`, "id", "100"), status: 422, code: 42207},
		})
	})

	t.Run("bad input", func(t *testing.T) {
		big := strings.Repeat("x", 9<<20)
		runSteps(t, base, []step{
			{name: "malformed JSON", method: "POST", path: "/subjects/bad-value/versions", body: `{"schema":`, status: 400, code: 400},
			{name: "schema of the wrong type", method: "POST", path: "/subjects/bad-value/versions", body: `{"schema":42}`, status: 422, code: 422},
			{name: "empty schema", method: "POST", path: "/subjects/bad-value/versions", body: `{"schema":""}`, status: 422, code: 422},
			{name: "no schema", method: "POST", path: "/subjects/bad-value/versions", body: `{}`, status: 422, code: 422},
			{name: "invalid schema", method: "POST", path: "/subjects/bad-value/versions", body: schemaBody(`{"type":"recrod"}`), status: 422, code: 42201},
			{name: "invalid default", method: "POST", path: "/subjects/bad-value/versions", body: schemaBody(`{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"],"default":"null"}]}`), status: 422, code: 42201},
			{name: "other schema types", method: "POST", path: "/subjects/bad-value/versions", body: schemaBody(`syntax = "proto3";`, "schemaType", `"PROTOBUF"`), status: 422, code: 42201},
			{name: "invalid subject", method: "POST", path: "/subjects/bad%01value/versions", body: schemaBody(str), status: 422, code: 42208},
			{name: "unsupported content type", method: "POST", path: "/subjects/bad-value/versions", body: schemaBody(str), hdr: []string{"Content-Type", "text/plain"}, status: 415, code: 415},
			{name: "unacceptable accept", method: "GET", path: "/subjects", hdr: []string{"Accept", "text/html"}, status: 406, code: 406},
			{name: "accept with wildcards", method: "GET", path: "/subjects", hdr: []string{"Accept", "application/*"}, status: 200},
			{name: "unknown path", method: "GET", path: "/nothing/here", status: 404, code: 404},
			{name: "wrong method", method: "PATCH", path: "/subjects", status: 405, code: 405},
			{name: "body too large", method: "POST", path: "/subjects/bad-value/versions", body: big, status: 413, code: 413},
		})
		if resp := testkit.Do(t, "GET", base+"/subjects", "", "Accept", "application/json"); resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("Accept: application/json answered with %q", resp.Header.Get("Content-Type"))
		}
		if resp := testkit.Do(t, "GET", base+"/subjects", ""); resp.Header.Get("Content-Type") != ctV1 {
			t.Errorf("default content type %q", resp.Header.Get("Content-Type"))
		}
		// The server is still up and serving.
		runSteps(t, base, []step{{name: "still serving", method: "GET", path: "/config", status: 200}})
	})

	t.Run("levels", func(t *testing.T) { levels(t, base) })
}

// levels registers v1, v2 and a candidate under each compatibility level and checks the verdict,
// transitive levels included.
func levels(t *testing.T, base string) {
	v1 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`
	v2 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}`
	// v3 reads v2 data but not v1 data (b has no default): BACKWARD yes, BACKWARD_TRANSITIVE no.
	v3 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`
	// v4 drops a: old readers need it (FORWARD no), new readers do not (BACKWARD yes).
	v4 := `{"type":"record","name":"R","fields":[{"name":"b","type":"int","default":0}]}`
	cases := []struct {
		level     string
		candidate string
		ok        bool
	}{
		{"NONE", v4, true},
		{"BACKWARD", v3, true},
		{"BACKWARD_TRANSITIVE", v3, false},
		{"FORWARD", v3, true},
		{"FORWARD", v4, false},
		{"FORWARD_TRANSITIVE", v3, true},
		{"FULL", v3, true},
		{"FULL", v4, false},
		{"FULL_TRANSITIVE", v3, false},
	}
	for i, c := range cases {
		subject := fmt.Sprintf("level-%d-value", i)
		status := 409
		if c.ok {
			status = 200
		}
		runSteps(t, base, []step{
			{name: c.level + " config", method: "PUT", path: "/config/" + subject, body: `{"compatibility":"` + c.level + `"}`, status: 200},
			{name: c.level + " v1", method: "POST", path: "/subjects/" + subject + "/versions", body: schemaBody(v1), status: 200},
			{name: c.level + " v2", method: "POST", path: "/subjects/" + subject + "/versions", body: schemaBody(v2), status: 200},
			{name: c.level + " candidate", method: "POST", path: "/subjects/" + subject + "/versions", body: schemaBody(c.candidate), status: status},
		})
	}
}
