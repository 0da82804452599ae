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

// parseRows reads a CSV table that has the required columns (an error names
// the first missing one) and maybe the optional ones, and turns each row
// into a T with of, given the positions of the required and the optional
// columns (-1 for an absent optional one).
func parseRows[T any](r io.Reader, required, optional []string, of func(row []string, req, opt []int) (T, error)) ([]T, error) {
	t, err := readTable(r)
	if err != nil {
		return nil, err
	}
	req, err := t.need(required...)
	if err != nil {
		return nil, err
	}
	opt := make([]int, len(optional))
	for i, n := range optional {
		opt[i] = -1
		if c, ok := t.col[n]; ok {
			opt[i] = c
		}
	}
	out := make([]T, 0, len(t.rows))
	for i, row := range t.rows {
		v, err := of(row, req, opt)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i+2, err)
		}
		out = append(out, v)
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

// readFile opens the CSV file at path and parses its rows.
func readFile[T any](path string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trace file: %w", err)
	}
	defer f.Close()
	rows, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rows, nil
}
