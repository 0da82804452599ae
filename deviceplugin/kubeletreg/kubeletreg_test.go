package kubeletreg

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStatIDTellsIncarnations: a file re-created at the same path (as
// kubelet re-creates its socket) has another identity; an absent one has
// none.
func TestStatIDTellsIncarnations(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kubelet.sock")
	if _, ok := StatID(p); ok {
		t.Fatal("absent file has an identity")
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	first, ok := StatID(p)
	if !ok {
		t.Fatal("no identity for an existing file")
	}
	if again, _ := StatID(p); again != first {
		t.Fatalf("the same file changed identity: %+v then %+v", first, again)
	}
	// Keep the old inode alive so the new file cannot reuse its number.
	old := p + ".old"
	if err := os.Rename(p, old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if second, _ := StatID(p); second == first {
		t.Fatalf("a re-created file kept its identity %+v", first)
	}
}
