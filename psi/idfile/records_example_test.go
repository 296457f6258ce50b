package idfile_test

import (
	"fmt"
	"strings"

	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
)

func ExampleReadRecords() {
	customers := `Email,Phone,First Name,Last Name,Country,Zip,customer_id
Bob@Example.com,(415) 555-2671,Bob,Smith,US,94016,c1
,020 7946 0958,Ann,Lee,GB,WC2H 8LG,c2
bob@example.com,,Bob,Smith,US,94016,c3
8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d,call me,Jane,Doe,US,94016,c4
Carol <carol@example.com>,,Carol,King,US,94016,c5
`
	res, err := idfile.ReadRecords(strings.NewReader(customers), idfile.RecordOptions{Ident: ident.Options{DefaultRegion: "US"}},
		func(r idfile.Reject) { fmt.Println("rejected", r) })
	if err != nil {
		panic(err)
	}
	var using, ignoring, unknown []string
	for _, c := range res.Columns {
		switch c.Use {
		case idfile.ColumnIdentifier:
			using = append(using, c.Describe())
		case idfile.ColumnRegion:
			using = append(using, c.Name+" (phone region)")
		case idfile.ColumnIgnored:
			ignoring = append(ignoring, c.Name)
		default:
			unknown = append(unknown, c.Name)
		}
	}
	fmt.Printf("using columns %s; ignoring %s; unknown columns: %s\n",
		strings.Join(using, ", "), strings.Join(ignoring, ", "), strings.Join(unknown, ", "))
	fmt.Printf("%d rows: %d customers, %d duplicates, %d rejected; %d bad cells; %d slots\n",
		res.Rows, len(res.Records), res.Duplicates, res.Rejected, res.BadCells, res.Slots())
	for _, r := range res.Records {
		fmt.Println("line", r.Line, r.IDs)
	}
	// Output:
	// rejected line 5: Phone: letters
	// rejected line 6: Email: display_name
	// rejected line 6: no_identifier
	// using columns Email (email, plain 2, sha256 1), Phone (phone, plain), Country (phone region); ignoring First Name, Last Name, Zip; unknown columns: customer_id
	// 5 rows: 3 customers, 1 duplicates, 1 rejected; 2 bad cells; 2 slots
	// line 2 [psi.RecordID{kind=email} psi.RecordID{kind=phone}]
	// line 3 [psi.RecordID{kind=phone}]
	// line 5 [psi.RecordID{kind=email}]
}
