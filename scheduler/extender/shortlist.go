package extender

import "slices"

// DefaultShortlist is how many feasible nodes filter answers with at most
// (WithShortlist): kube-scheduler's own floor for the nodes it scores
// (minFeasibleNodesToFind).
const DefaultShortlist = 100

// WithShortlist makes filter answer with at most n feasible nodes, the
// policy's best: the nodes with the highest scores, ties kept in the order
// kube-scheduler sent them. 0 answers with every feasible node.
//
// Filter still fits the pod on every node kube-scheduler sends (the policy
// compares them all), but kube-scheduler then runs its own score plugins
// and the prioritize call on the shortlist only, instead of on thousands of
// nodes, and the filter answer shrinks from thousands of names to n. The
// trade: a node outside the policy's best n can no longer win on
// kube-scheduler's own soft preferences (preferred affinity, topology
// spread, image locality). Nodes left off are not reported as failed:
// they were feasible, and a shortlist is never empty when any node fits.
func WithShortlist(n int) Option { return func(e *Extender) { e.shortlist = n } }

// shortlist returns the at most n best of the feasible nodes names (with
// their scores), in their original order. It returns its arguments when
// n <= 0 or there are no more than n.
func shortlist(names []string, scores []float64, n int) ([]string, []float64) {
	if n <= 0 || len(names) <= n {
		return names, scores
	}
	sorted := slices.Clone(scores)
	slices.Sort(sorted)
	cut := sorted[len(sorted)-n] // the n-th best score
	above := 0                   // nodes strictly better than cut
	for _, s := range scores {
		if s > cut {
			above++
		}
	}
	ties := n - above // how many nodes scored exactly cut to keep
	outNames, outScores := make([]string, 0, n), make([]float64, 0, n)
	for i, s := range scores {
		switch {
		case s > cut:
		case s == cut && ties > 0:
			ties--
		default:
			continue
		}
		outNames, outScores = append(outNames, names[i]), append(outScores, s)
	}
	return outNames, outScores
}
