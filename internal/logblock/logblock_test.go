package logblock

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

func sample(n int) []keyplane.RequestLog {
	t0 := time.Date(2026, 12, 4, 19, 59, 0, 123456000, time.UTC)
	out := make([]keyplane.RequestLog, n)
	for i := range out {
		out[i] = keyplane.RequestLog{
			ID: fmt.Sprintf("req_%026d", i), WorkspaceID: "ws_1", KeyID: fmt.Sprintf("apk_%d", i%7),
			Code: []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyRateLimited}[i%2], Source: keyplane.SourceVerify,
			Method: "POST", Path: "/v1/verify", IP: "2001:db8::7", UserAgent: "agent/1.0 (café ☕)", LatencyMicros: int64(i * 13),
			// Out of order and before the epoch once: deltas are signed.
			Timestamp: t0.Add(time.Duration(i%5-2) * 1500 * time.Microsecond),
		}
		if i%3 == 0 {
			out[i].IdentityID, out[i].CreditsSpent, out[i].Tags = "idn_1", int64(i), []string{"plan:pro", fmt.Sprint(i)}
		}
	}
	out[n-1].Timestamp = time.UnixMicro(-5).UTC()
	out[n-1].Method, out[n-1].Path, out[n-1].IP, out[n-1].UserAgent, out[n-1].Code = "", "", "", "", ""
	return out
}

func TestRoundTrip(t *testing.T) {
	var enc Encoder
	for _, n := range []int{1, 2, 300} {
		want := sample(n)
		data := enc.Encode([]byte("prefix"), want)
		data = data[len("prefix"):]
		if c, err := Count(data); err != nil || c != n {
			t.Fatalf("Count = %d, %v; want %d", c, err, n)
		}
		var got []keyplane.RequestLog
		if err := Decode(data, "ws_1", func(e keyplane.RequestLog) bool { got = append(got, e); return true }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %d entries:\n%+v\nwant\n%+v", n, got, want)
		}
		// fn's false stops the walk.
		seen := 0
		if err := Decode(data, "ws_1", func(keyplane.RequestLog) bool { seen++; return false }); err != nil || seen != 1 {
			t.Errorf("stopped walk saw %d entries, %v", seen, err)
		}
	}
	// Repeated strings are stored once: an entry of 300 takes its id (31 bytes) and little more.
	if data := enc.Encode(nil, sample(300)); len(data) > 300*60 {
		t.Errorf("300 entries take %d bytes", len(data))
	}
}

// TestEncodeOrder: a block of entries picked by index is the block of those entries copied out in
// that order, and one encoder's blocks do not share bytes.
func TestEncodeOrder(t *testing.T) {
	var enc Encoder
	entries := sample(50)
	order := []int{49, 3, 3, 0, 17, 48, 1}
	picked := make([]keyplane.RequestLog, len(order))
	for i, j := range order {
		picked[i] = entries[j]
	}
	got := enc.EncodeOrder(nil, entries, order)
	if want := new(Encoder).Encode(nil, picked); !reflect.DeepEqual(got, want) {
		t.Fatalf("EncodeOrder = %x\nwant %x", got, want)
	}
	before := append([]byte(nil), got...)
	enc.EncodeOrder(nil, entries, []int{5, 6})
	if !reflect.DeepEqual(got, before) {
		t.Fatal("the next block changed the first")
	}
	if empty := enc.EncodeOrder(nil, entries, nil); !reflect.DeepEqual(empty, new(Encoder).Encode(nil, nil)) {
		t.Fatalf("no entries: %x", empty)
	}
}

func TestDecodeRefusesCorruptBlocks(t *testing.T) {
	data := new(Encoder).Encode(nil, sample(20))
	for _, bad := range [][]byte{nil, {}, {2}, {version1}, data[:len(data)-1], append(append([]byte{}, data...), 0),
		{version1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0}, {version1, 1, 0, 0}} {
		if err := Decode(bad, "ws", func(keyplane.RequestLog) bool { return true }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(new(Encoder).Encode(nil, sample(3)))
	f.Add([]byte{version1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []keyplane.RequestLog
		if err := Decode(data, "ws", func(e keyplane.RequestLog) bool { got = append(got, e); return true }); err != nil {
			return
		}
		// What decodes encodes back to something that decodes the same.
		var again []keyplane.RequestLog
		if err := Decode(new(Encoder).Encode(nil, got), "ws", func(e keyplane.RequestLog) bool { again = append(again, e); return true }); err != nil {
			t.Fatalf("re-encoded block: %v", err)
		}
		if !reflect.DeepEqual(got, again) && len(got) > 0 {
			t.Fatalf("re-encoded block decodes to %+v, want %+v", again, got)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	entries := sample(500)
	var enc Encoder
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = enc.Encode(buf[:0], entries)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
}

func BenchmarkDecode(b *testing.B) {
	data := new(Encoder).Encode(nil, sample(500))
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(data, "ws_1", func(keyplane.RequestLog) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/entry")
}
