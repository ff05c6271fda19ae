# shared helpers
toolbox_main() {
    echo "toolbox: $*"
}
