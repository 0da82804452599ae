package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// table is a CSV file read into a header index and rows.
type table struct {
	col  map[string]int
	rows [][]string
}

func readTable(r io.Reader) (*table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, fmt.Errorf("read header: %w", err)
	}
	t := &table{col: make(map[string]int, len(head))}
	for i, h := range head {
		t.col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read row %d: %w", len(t.rows)+2, err)
		}
		t.rows = append(t.rows, rec)
	}
	return t, nil
}

// need returns the column positions of names, or an error naming the first
// missing one.
func (t *table) need(names ...string) ([]int, error) {
	out := make([]int, len(names))
	for i, n := range names {
		c, ok := t.col[n]
		if !ok {
			return nil, fmt.Errorf("missing column %q", n)
		}
		out[i] = c
	}
	return out, nil
}

// field returns row[c], or "" when the row is short or c < 0.
func field(row []string, c int) string {
	if c < 0 || c >= len(row) {
		return ""
	}
	return strings.TrimSpace(row[c])
}

func intField(row []string, c int, name string) (int64, error) {
	s := field(row, c)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("column %s: %w", name, err)
		}
		v = int64(f)
	}
	if v < 0 {
		return 0, fmt.Errorf("column %s: negative value %d", name, v)
	}
	return v, nil
}

func openFile(path string, parse func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open trace file: %w", err)
	}
	defer f.Close()
	if err := parse(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
