package trace

import "io"

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
	return readFile(path, ParseNodes)
}

// ParseNodes parses a node list with the columns sn, cpu_milli, gpu and
// model (memory_mib optional).
func ParseNodes(r io.Reader) ([]Node, error) {
	return parseRows(r, []string{"sn", "cpu_milli", "gpu", "model"}, []string{"memory_mib"}, nodeOf)
}

func nodeOf(row []string, cols, opt []int) (Node, error) {
	n := Node{Name: field(row, cols[0]), Model: field(row, cols[3])}
	var err error
	if n.CPUMilli, err = intField(row, cols[1], "cpu_milli"); err != nil {
		return n, err
	}
	if n.MemoryMiB, err = intField(row, opt[0], "memory_mib"); err != nil {
		return n, err
	}
	g, err := intField(row, cols[2], "gpu")
	n.GPUs = int(g)
	return n, err
}

// GPUCount returns the number of GPUs of the nodes.
func GPUCount(nodes []Node) int {
	n := 0
	for _, x := range nodes {
		n += x.GPUs
	}
	return n
}
