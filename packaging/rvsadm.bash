# bash completion for rvsadm(8): ipvsadm's options, RVS's additions.
_rvsadm() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        -s|--scheduler)
            COMPREPLY=($(compgen -W "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos" -- "$cur")); return ;;
        -b|--sched-flags)
            COMPREPLY=($(compgen -W "sh-fallback sh-port mh-fallback mh-port flag-1 flag-2 flag-3" -- "$cur")); return ;;
        --start-daemon|--stop-daemon)
            COMPREPLY=($(compgen -W "master backup" -- "$cur")); return ;;
        --sysctl)
            COMPREPLY=($(compgen -W "net.ipv4.vs.sloppy_tcp=0 net.ipv4.vs.sloppy_tcp=1" -- "$cur")); return ;;
    esac
    COMPREPLY=($(compgen -W "-A -E -D -C -R -S -a -e -d -L -l -Z -h -t -u -f -6 -s -p -M -b -r -g -i -m -w -x -y -n -c
        --add-service --edit-service --delete-service --clear --restore --save --add-server --edit-server
        --delete-server --list --zero --set --tcp-service --udp-service --fwmark-service --ipv6 --scheduler
        --persistent --netmask --sched-flags --real-server --gatewaying --ipip --masquerading --weight
        --u-threshold --l-threshold --numeric --connection --timeout --stats --rate --thresholds
        --persistent-conn --exact --sort --nosort --daemon --start-daemon --stop-daemon --mcast-interface
        --syncid --sync-maxlen --mcast-group --mcast-port --mcast-ttl --reload --vrrp --sysctl --help" -- "$cur"))
}
complete -F _rvsadm rvsadm
