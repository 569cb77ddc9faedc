// Whole dmsetup lines: `[name:] <start> <length> multipath <params>` for table and status.
import KeelCore
import Testing

@Suite struct CodecLineTests {
    @Test func parsesTheRigTableLine() throws {
        let line = try DMTableLine.parse(RigLines.table)
        #expect(line.name == "mpatha")
        #expect(line.startSector == 0)
        #expect(line.lengthSectors == 131_072)
        #expect(line.targetType == "multipath")
        #expect(line.table == (try MultipathTable.parse(RigLines.tableParams)))
    }

    @Test func parsesTheRigStatusLine() throws {
        let line = try DMStatusLine.parse(RigLines.status)
        #expect(line.name == "mpatha")
        #expect(line.startSector == 0)
        #expect(line.lengthSectors == 131_072)
        #expect(line.targetType == "multipath")
        #expect(line.status == (try MultipathStatus.parse(RigLines.statusParams)))
    }

    @Test func parsesATableLineWithoutAName() throws {
        // `dmsetup table mpatha` prints no name.
        let line = try DMTableLine.parse("0 131072 multipath " + RigLines.tableParams + "\n")
        #expect(line.name == nil)
        #expect(line.lengthSectors == 131_072)
        #expect(line.table.groups.count == 3)
    }

    @Test func parsesAStatusLineWithoutAName() throws {
        let line = try DMStatusLine.parse("2048 4096 multipath " + RigLines.statusParams)
        #expect(line.name == nil)
        #expect(line.startSector == 2048)
        #expect(line.lengthSectors == 4096)
        #expect(line.status.groups.count == 3)
    }

    @Test func rendersLinesAsDmsetupPrintsThem() throws {
        #expect(try DMTableLine.parse(RigLines.table).render() == RigLines.table)
        #expect(try DMStatusLine.parse(RigLines.status).render() == RigLines.status)
    }

    @Test func refusesAnotherTargetType() {
        let error = codecError { () throws(CodecError) in try DMTableLine.parse("vg-root: 0 2048 linear 8:1 0") }
        #expect(error?.problem == .malformed(.multipathTarget))
        #expect(error?.tokenIndex == 3)
        #expect(error?.description == "table line: expected target type multipath, found \"linear\" (token 3)")
    }

    @Test func countsTokenIndexesFromTheStartOfTheLine() {
        let line = "mpatha: 0 131072 multipath 2 0 1 0 3 1 A 0 2 2 8:0 Q 0 0 1"
        let error = codecError { () throws(CodecError) in try DMStatusLine.parse(line) }
        #expect(error?.source == .statusLine)
        #expect(error?.problem == .malformed(.pathState))
        #expect(error?.tokenIndex == 15)
    }

    @Test func refusesAnEmptyName() {
        let error = codecError { () throws(CodecError) in try DMStatusLine.parse(": 0 8 multipath 2 0 0 0 0 0") }
        #expect(error?.problem == .malformed(.deviceName))
    }

    @Test func refusesATruncatedHeader() {
        let error = codecError { () throws(CodecError) in try DMTableLine.parse("mpatha: 0 131072") }
        #expect(error?.problem == .missing(.targetType))
        #expect(error?.tokenIndex == 3)
    }

    @Test func refusesANonNumericLength() {
        let error = codecError { () throws(CodecError) in try DMTableLine.parse("mpatha: 0 big multipath 0 0 0 0") }
        #expect(error?.problem == .malformed(.lengthSectors))
        #expect(error?.token == TokenExcerpt("big"))
    }
}
