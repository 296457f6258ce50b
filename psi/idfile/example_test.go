package idfile_test

import (
	"fmt"
	"strings"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
)

func ExampleReadList() {
	list := `name,email,phone
"Smith, Bob",Bob@Example.com,(415) 555-2671
Alice,alice@example.com,
Bob again,bob@example.com,
Carol,Carol <carol@example.com>,
`
	opts := idfile.ListOptions{
		Format: idfile.DetectFormat("customers.csv"),
		Kind:   psi.KindEmail,
	}
	res, err := idfile.ReadList(strings.NewReader(list), opts, func(r idfile.Reject) {
		fmt.Println("rejected", r)
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("rows %d, accepted %d, duplicates %d, rejected %d\n", res.Rows, res.Accepted, res.Duplicates, res.Rejected)
	// Output:
	// rejected line 5: display_name
	// rows 4, accepted 2, duplicates 1, rejected 1
}

func ExampleReadRows() {
	rows := `subject,kind,value,collected_for
u-1001,email,Bob@Example.com,signup
u-1001,phone,+1 415 555 2671,two_factor
u-1002,email,` + strings.Repeat("ab", 32) + `,signup
`
	res, err := idfile.ReadRows(strings.NewReader(rows), idfile.FormatCSV, ident.Options{}, func(r idfile.Row) error {
		fmt.Println(r.Line, r.Subject, r.Identifier.Canonical, r.CollectedFor, r.CollectedFor.Security())
		return nil
	}, func(r idfile.Reject) {
		fmt.Println("rejected", r)
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", res)
	// Output:
	// 2 u-1001 bob@example.com signup false
	// 3 u-1001 +14155552671 two_factor true
	// rejected line 4: prehashed_not_allowed
	// {Rows:3 Accepted:2 Rejected:1}
}
