package password

import (
	"strings"
	"testing"
)

func TestHashCheck(t *testing.T) {
	h := Hash("correct horse battery staple")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q is not argon2id PHC with the chosen parameters", h)
	}
	if h2 := Hash("correct horse battery staple"); h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if ok, err := Check(h, "correct horse battery staple"); !ok || err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if ok, _ := Check(h, "correct horse battery stapl"); ok {
		t.Fatal("wrong password accepted")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=0,t=1,p=1$AA$AA", "plain"} {
		if ok, err := Check(bad, "x"); ok || err == nil {
			t.Errorf("Check(%q) = %v, %v", bad, ok, err)
		}
	}
	if g := Generate(); len(g) != 24 || g == Generate() {
		t.Fatalf("Generate = %q", g)
	}
}
