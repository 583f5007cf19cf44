package adapter

import (
	"slices"
	"testing"
)

// Every reason the failure table can give is in Reasons, or a metric would
// meet a label value it did not expect.
func TestReasonsClosed(t *testing.T) {
	for _, c := range failureClass {
		if !slices.Contains(Reasons[:], c.reason) {
			t.Errorf("reason %q of %v is not in Reasons", c.reason, c.err)
		}
	}
	for _, r := range []string{ReasonPoison, ReasonNATS} { // set outside the table
		if !slices.Contains(Reasons[:], r) {
			t.Errorf("reason %q is not in Reasons", r)
		}
	}
	for i, s := range Statuses {
		if int(s) != i {
			t.Errorf("Statuses[%d] is %v: keep them in value order", i, s)
		}
	}
}
