package codec

import "testing"

func TestParseColumn(t *testing.T) {
	c, err := ParseColumn("off", "int8", "kafka.offset", "", true)
	if err != nil || c != (Column{Name: "off", Type: TypeInt8, Source: SourceOffset, Required: true}) {
		t.Fatalf("ParseColumn = %+v, %v", c, err)
	}
	if _, err := ParseColumn("x", "int9", "", "x", false); err == nil {
		t.Fatal("ParseColumn accepted type int9")
	}
	if _, err := ParseColumn("x", "int8", "kafka.nope", "", false); err == nil {
		t.Fatal("ParseColumn accepted source kafka.nope")
	}
}
