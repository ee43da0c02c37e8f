package dashboard

import (
	"fmt"
	"sort"
	"strconv"
)

// Layout sizes of the service graph (SVG user units).
const (
	nodeW   = 150
	nodeH   = 46
	colW    = 330
	rowH    = 110
	marginX = 30
	marginY = 40
)

// graphLayout is the service graph placed for drawing.
type graphLayout struct {
	Width, Height int
	Nodes         []placedNode
	Edges         []placedEdge
}

type placedNode struct {
	Node
	X, Y, W, H int
	TextX      int
	TextY      int
}

type placedEdge struct {
	Edge
	SourceLabel, DestinationLabel string
	Path                          string
	LabelX, LabelY                int
	Rate                          string // "1.5 req/s" or "– req/s"
	Counts                        string // "2 denied · 1 error"
	Class                         string // edge css classes
}

// layoutGraph places nodes in columns by call depth: callers left of what
// they call. declared (optional) are calls the mesh file declares
// (upstreams), used only to place services before any traffic.
func layoutGraph(g Graph, declared [][2]string) graphLayout {
	idx := map[string]int{}
	for i, n := range g.Nodes {
		idx[n.ID] = i
	}
	var links [][2]int
	for _, e := range g.Edges {
		links = append(links, [2]int{idx[e.Source], idx[e.Destination]})
	}
	for _, d := range declared {
		s, ok1 := idx[d[0]]
		t, ok2 := idx[d[1]]
		if ok1 && ok2 {
			links = append(links, [2]int{s, t})
		}
	}
	// Longest path from the callers, bounded so that cycles end.
	n := len(g.Nodes)
	rank := make([]int, n)
	for iter := 0; iter < n; iter++ {
		changed := false
		for _, l := range links {
			if l[0] != l[1] && rank[l[1]] < rank[l[0]]+1 && rank[l[0]]+1 < n {
				rank[l[1]] = rank[l[0]] + 1
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	cols := map[int][]int{}
	maxRank, maxRows := 0, 0
	for i := range g.Nodes {
		cols[rank[i]] = append(cols[rank[i]], i)
		maxRank = max(maxRank, rank[i])
	}
	for _, c := range cols {
		sort.Slice(c, func(a, b int) bool { return g.Nodes[c[a]].Label < g.Nodes[c[b]].Label })
		maxRows = max(maxRows, len(c))
	}
	// Calls that skip a column arc over (or under) the columns between,
	// each a lane further out, so they cross no node.
	center := marginY + (maxRows*rowH-(rowH-nodeH))/2
	rowOf := map[int]int{}
	for _, c := range cols {
		for row, i := range c {
			rowOf[i] = row
		}
	}
	yOf := func(i int) int { // before padding
		c := cols[rank[i]]
		return marginY + (maxRows-len(c))*rowH/2 + rowOf[i]*rowH
	}
	lane := map[int]int{} // edge index -> lane (negative: above)
	above, below := 0, 0
	for ei, e := range g.Edges {
		si, ti := idx[e.Source], idx[e.Destination]
		if rank[ti]-rank[si] < 2 {
			continue
		}
		if (yOf(si)+yOf(ti))/2+nodeH/2 <= center {
			above++
			lane[ei] = -above
		} else {
			below++
			lane[ei] = below
		}
	}
	const laneH = 44
	top := above * laneH
	l := graphLayout{
		Width:  2*marginX + maxRank*colW + nodeW,
		Height: 2*marginY + max(maxRows-1, 0)*rowH + nodeH + top + below*laneH,
	}
	pos := make([]placedNode, n)
	for i := range g.Nodes {
		x := marginX + rank[i]*colW
		y := yOf(i) + top
		pos[i] = placedNode{Node: g.Nodes[i], X: x, Y: y, W: nodeW, H: nodeH, TextX: x + nodeW/2, TextY: y + nodeH/2 + 5}
	}
	l.Nodes = pos
	nodesTop, nodesBottom := marginY+top, marginY+top+max(maxRows-1, 0)*rowH+nodeH
	pairs := map[[2]string]bool{}
	for _, e := range g.Edges {
		pairs[[2]string{e.Source, e.Destination}] = true
	}
	for ei, e := range g.Edges {
		s, t := pos[idx[e.Source]], pos[idx[e.Destination]]
		pe := placedEdge{Edge: e, SourceLabel: s.Label, DestinationLabel: t.Label, Rate: rateText(e), Counts: countsText(e), Class: "edge"}
		if e.Denies > 0 {
			pe.Class += " denied"
		}
		if e.Forbidden {
			pe.Class += " forbidden"
		}
		if e.Errors > 0 {
			pe.Class += " errors"
		}
		// A call in both directions: shift each a little so both show.
		shift := 0
		if pairs[[2]string{e.Destination, e.Source}] {
			shift = 8
			if e.Source > e.Destination {
				shift = -8
			}
		}
		switch {
		case e.Source == e.Destination:
			x, y := s.X+s.W/2, s.Y
			pe.Path = fmt.Sprintf("M %d %d C %d %d, %d %d, %d %d", x-20, y, x-50, y-45, x+50, y-45, x+20, y)
			pe.LabelX, pe.LabelY = x, y-40
		case lane[ei] != 0:
			// The label sits at the arc's apex: 0.75*c + 0.25*mean(y1, y2)
			// for a cubic whose control points share y = c.
			x1, y1 := s.X+s.W, s.Y+s.H/2
			x2, y2 := t.X, t.Y+t.H/2
			apex := nodesTop - 22 - (-lane[ei]-1)*laneH
			if lane[ei] > 0 {
				apex = nodesBottom + 22 + (lane[ei]-1)*laneH
			}
			c := (4*apex - (y1+y2)/2) / 3
			pe.Path = fmt.Sprintf("M %d %d C %d %d, %d %d, %d %d", x1, y1, x1+40, c, x2-40, c, x2-4, y2)
			pe.LabelX, pe.LabelY = (x1+x2)/2, apex
		case rank[idx[e.Destination]] > rank[idx[e.Source]]:
			x1, y1 := s.X+s.W, s.Y+s.H/2+shift
			x2, y2 := t.X, t.Y+t.H/2+shift
			mx := (x1 + x2) / 2
			pe.Path = fmt.Sprintf("M %d %d C %d %d, %d %d, %d %d", x1, y1, mx, y1, mx, y2, x2-4, y2)
			pe.LabelX, pe.LabelY = mx, (y1+y2)/2-6
		default: // same column or backwards: an arc below
			x1, y1 := s.X+s.W/2+shift, s.Y+s.H
			x2, y2 := t.X+t.W/2+shift, t.Y+t.H
			cx, cy := (x1+x2)/2, max(y1, y2)+70
			if s.X == t.X { // stacked: go round the side
				x1, y1 = s.X+s.W, s.Y+s.H/2
				x2, y2 = t.X+t.W, t.Y+t.H/2
				cx, cy = s.X+s.W+90, (y1+y2)/2
			}
			pe.Path = fmt.Sprintf("M %d %d Q %d %d, %d %d", x1, y1, cx, cy, x2, y2+4)
			pe.LabelX, pe.LabelY = (x1+2*cx+x2)/4, (y1+2*cy+y2)/4
			if cy > l.Height-marginY/2 {
				l.Height = cy + marginY/2
			}
		}
		l.Edges = append(l.Edges, pe)
	}
	return l
}

func rateText(e Edge) string {
	if !e.RateKnown {
		return "– req/s"
	}
	return strconv.FormatFloat(e.RequestsPerSecond, 'f', -1, 64) + " req/s"
}

func countsText(e Edge) string {
	s := plural(e.Errors, "error", "errors") + " · " + strconv.FormatInt(e.Denies, 10) + " denied"
	if e.AuditDenies > 0 {
		s += " · " + strconv.FormatInt(e.AuditDenies, 10) + " audit"
	}
	return s
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}
