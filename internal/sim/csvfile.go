package sim

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writeCSVFile writes header and rows to path, creating its directory;
// what names the file in errors ("curves CSV").
func writeCSVFile(path, what string, header []string, rows [][]string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	cw := csv.NewWriter(f)
	_ = cw.Write(header)
	_ = cw.WriteAll(rows) // WriteAll flushes; its error is cw.Error's
	if err := cw.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", what, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}

// csvFloat formats a percentage for the CSV files.
func csvFloat(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }
