package trace

import (
	"fmt"
	"io"
)

// Node is one row of the node list.
type Node struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	GPUs      int
	Model     string
}

// ReadNodes reads a node list CSV file.
func ReadNodes(path string) ([]Node, error) {
	var nodes []Node
	err := openFile(path, func(r io.Reader) error {
		var err error
		nodes, err = ParseNodes(r)
		return err
	})
	return nodes, err
}

// ParseNodes parses a node list with the columns sn, cpu_milli, gpu and
// model (memory_mib optional).
func ParseNodes(r io.Reader) ([]Node, error) {
	t, err := readTable(r)
	if err != nil {
		return nil, err
	}
	cols, err := t.need("sn", "cpu_milli", "gpu", "model")
	if err != nil {
		return nil, err
	}
	mem := -1
	if c, ok := t.col["memory_mib"]; ok {
		mem = c
	}
	nodes := make([]Node, 0, len(t.rows))
	for i, row := range t.rows {
		n := Node{Name: field(row, cols[0]), Model: field(row, cols[3])}
		var g int64
		if n.CPUMilli, err = intField(row, cols[1], "cpu_milli"); err == nil {
			if n.MemoryMiB, err = intField(row, mem, "memory_mib"); err == nil {
				g, err = intField(row, cols[2], "gpu")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i+2, err)
		}
		n.GPUs = int(g)
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// GPUCount returns the number of GPUs of the nodes.
func GPUCount(nodes []Node) int {
	n := 0
	for _, x := range nodes {
		n += x.GPUs
	}
	return n
}
