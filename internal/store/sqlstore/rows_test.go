package sqlstore

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/keyplane/keyplane"
)

// actorSamples are stored actors: what json.Marshal writes for plain and awkward ones, and JSON it
// does not write (other order, spaces, escapes, broken).
var actorSamples = []string{
	`{"type":"user","id":"usr_01","name":"Ada Lovelace"}`,
	`{"type":"root_key","id":"rk_1","name":""}`,
	`{"type":"","id":"","name":""}`,
	`{"type":"user","id":"usr_01","name":"Zoë \u003cadmin\u003e"}`,
	`{"type":"user","id":"usr_01","name":"a\"b"}`,
	`{"type":"user","id":"usr_01","name":"a\\b"}`,
	`{"type":"user","id":"usr_01","name":"\",\"id\":\"x"}`,
	`{"id":"usr_01","type":"user","name":"Ada"}`,
	`{"type": "user", "id": "usr_01", "name": "Ada"}`,
	`{"type":"user","id":"usr_01","name":"Ada"} `,
	`{"type":"user","id":"usr_01","name":"Ada"}x`,
	`{"type":"user","id":"usr_01"}`,
	`{"type":"user","id":"usr_01","name":"Ada"`,
	`{"type":"user","id":"usr_01","name":"Ada","extra":1}`,
	`{"type":"user","id":"usr_01","name":"tab	here"}`,
	`null`,
	``,
}

// TestDecodeActor: decodeActor reads every stored actor as encoding/json does, and fails where it
// fails.
func TestDecodeActor(t *testing.T) {
	for _, a := range []keyplane.Actor{{Type: "user", ID: "usr_1", Name: "Ada <ada@example.com> & co"}, {Type: "system", ID: "x", Name: "Zoë \"Z\" \\ 😀"}} {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		actorSamples = append(actorSamples, string(b))
	}
	for _, s := range actorSamples {
		checkDecodeActor(t, s)
	}
}

func FuzzDecodeActor(f *testing.F) {
	for _, s := range actorSamples {
		f.Add(s)
	}
	f.Fuzz(checkDecodeActor)
}

func checkDecodeActor(t *testing.T, s string) {
	got, err := decodeActor(s)
	var want keyplane.Actor
	wantErr := json.Unmarshal([]byte(s), &want)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decodeActor(%q): error %v, encoding/json's %v", s, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeActor(%q) = %+v, encoding/json reads %+v", s, got, want)
	}
}
