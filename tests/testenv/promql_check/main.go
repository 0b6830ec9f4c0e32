// Command promql-check reads one PromQL expression per JSON line on stdin and
// prints, per line, the parser's error or the metric names the expression selects.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Expr    string   `json:"expr"`
	Error   string   `json:"error,omitempty"`
	Metrics []string `json:"metrics"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	promql := parser.NewParser(parser.Options{})
	for in.Scan() {
		var expr string
		if err := json.Unmarshal(in.Bytes(), &expr); err != nil {
			os.Exit(2)
		}
		res := result{Expr: expr, Metrics: []string{}}
		node, err := promql.ParseExpr(expr)
		if err != nil {
			res.Error = err.Error()
		} else {
			seen := map[string]bool{}
			parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					name := vs.Name
					for _, m := range vs.LabelMatchers {
						if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
							name = m.Value
						}
					}
					if name == "" {
						name = "{" + vs.String() + "}"
					}
					seen[name] = true
				}
				return nil
			})
			for name := range seen {
				res.Metrics = append(res.Metrics, name)
			}
			sort.Strings(res.Metrics)
		}
		if err := out.Encode(res); err != nil {
			os.Exit(2)
		}
	}
}
