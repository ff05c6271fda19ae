# network helpers
toolbox_hosts() {
    cat /etc/hosts
}
