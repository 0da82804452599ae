package api

import (
	"strings"
	"testing"
)

// checkErr fails the test unless err is what a table case wants: no error
// when want is "", else an error whose text contains want. It reports
// whether the case wanted an error (the caller then has nothing more to
// check).
func checkErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	return true
}
