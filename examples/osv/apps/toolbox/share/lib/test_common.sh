# test helper, excluded by the FileMap
test_toolbox_main() {
    toolbox_main selftest
}
