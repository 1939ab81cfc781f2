#!/usr/bin/perl
# A test SMSC built on Debian's Net::SMPP (libnet-smpp-perl), so the SMPP provider is checked
# against a protocol implementation nobody here wrote.
#
#   perl smsc.pl PORT SYSTEM_ID PASSWORD LOGFILE [ENQUIRE_SECONDS]
#
# PORT 0 picks a free port; "listening <port>" on stdout says it is ready. Every received PDU is
# appended to LOGFILE as one JSON line, so tests assert what the SMSC actually got. Behaviour by
# destination address (the last two digits):
#   ...13  submit_sm_resp OK, then a receipt stat:UNDELIV err:013
#   ...14  submit_sm_resp OK, then a receipt carried by TLVs only (message_state 5 UNDELIVERABLE)
#   ...66  no answer at all (a hang)
#   ...77  submit_sm_resp with command_status 0x45 (ESME_RSUBMITFAIL)
#   other  submit_sm_resp OK, then a receipt stat:DELIVRD err:000
# Receipts are only sent when registered_delivery asks for them. One forked child per connection.
# ENQUIRE_SECONDS (whole seconds, default off): Net::SMPP's own enquire_link to an idle ESME.
use strict;
use warnings;
use Net::SMPP;
use JSON::PP;
use IO::Handle;
use POSIX qw(strftime);
use Time::HiRes qw(time);

my ($port, $want_id, $want_pw, $logfile, $enquire) = @ARGV;
die "usage: smsc.pl PORT SYSTEM_ID PASSWORD LOGFILE\n" unless defined $logfile;

$SIG{CHLD} = 'IGNORE';    # children reap themselves
$| = 1;

my $json = JSON::PP->new->canonical;
open(my $log, '>>', $logfile) or die "can't open $logfile: $!\n";
$log->autoflush(1);

sub logpdu {
    my (%fields) = @_;
    $fields{t}   = time;
    $fields{pid} = $$;
    # one syswrite per line: appends from several children don't interleave
    syswrite($log, $json->encode(\%fields) . "\n");
}

my $listener = Net::SMPP->new_listen('127.0.0.1', port => $port, smpp_version => 0x34,
                                     enquire_interval => $enquire || 0,
                                     async => 1)    # requests don't wait: the loop reads answers
  or die "can't listen on port $port: $!\n";
print "listening " . $listener->sockport . "\n";

while (1) {
    my $conn = $listener->accept or next;    # accept times out now and then: try again
    my $pid = fork();
    if (!defined $pid) { warn "fork: $!"; next; }
    if ($pid == 0) {
        close($listener);
        serve($conn);
        exit 0;
    }
    close($conn);
}

sub serve {
    my ($conn) = @_;
    my $bound   = 0;
    my $counter = 0;
    while (1) {
        my $pdu = $conn->read_pdu() or do { logpdu(cmd => 'disconnect'); return; };
        my $cmd = $pdu->{cmd};
        my $name = $pdu->{known_pdu} ? $pdu->explain_cmd : sprintf('0x%08x', $cmd);
        if ($cmd == 0x00000009) {    # bind_transceiver
            my $ok = $pdu->{system_id} eq $want_id && $pdu->{password} eq $want_pw;
            logpdu(cmd => $name, seq => $pdu->{seq}, system_id => $pdu->{system_id},
                   system_type => $pdu->{system_type},
                   interface_version => $pdu->{interface_version}, ok => $ok ? JSON::PP::true : JSON::PP::false);
            $conn->bind_transceiver_resp(seq => $pdu->{seq}, status => $ok ? 0 : 0x0E,
                                         system_id => 'perlsmsc');
            $bound = $ok;
        }
        elsif ($cmd == 0x00000004) {    # submit_sm
            my $dest = $pdu->{destination_addr};
            my $payload = $pdu->{message_payload};
            logpdu(cmd => $name, seq => $pdu->{seq}, dest => $dest,
                   dest_addr_ton => $pdu->{dest_addr_ton}, dest_addr_npi => $pdu->{dest_addr_npi},
                   source => $pdu->{source_addr}, source_addr_ton => $pdu->{source_addr_ton},
                   source_addr_npi => $pdu->{source_addr_npi},
                   data_coding => $pdu->{data_coding}, esm_class => $pdu->{esm_class},
                   registered_delivery => $pdu->{registered_delivery},
                   short_message => unpack('H*', $pdu->{short_message}),
                   (defined $payload ? (message_payload => unpack('H*', $payload)) : ()));
            if (!$bound) {
                $conn->submit_sm_resp(seq => $pdu->{seq}, status => 0x04, message_id => '');
                next;
            }
            next if $dest =~ /66$/;    # the hang: never answer
            if ($dest =~ /77$/) {
                $conn->submit_sm_resp(seq => $pdu->{seq}, status => 0x45, message_id => '');
                next;
            }
            my $id = sprintf('%d%04d', $$, ++$counter);
            $conn->submit_sm_resp(seq => $pdu->{seq}, message_id => $id);
            next unless ($pdu->{registered_delivery} & 0x03);
            my $now = strftime('%y%m%d%H%M', gmtime);
            my ($stat, $err, $state) = ('DELIVRD', '000', 2);
            ($stat, $err, $state) = ('UNDELIV', '013', 5) if $dest =~ /13$/;
            if ($dest =~ /14$/) {
                $conn->deliver_sm(source_addr => $dest, destination_addr => $pdu->{source_addr},
                                  esm_class => 0x04, short_message => '',
                                  receipted_message_id => "$id\0", message_state => pack('C', 5),
                                  async => 1);
                next;
            }
            my $text = "id:$id sub:001 dlvrd:" . ($state == 2 ? '001' : '000')
              . " submit date:$now done date:$now stat:$stat err:$err text:"
              . substr($pdu->{short_message}, 0, 20);
            $conn->deliver_sm(source_addr => $dest, destination_addr => $pdu->{source_addr},
                              esm_class => 0x04, short_message => $text,
                              receipted_message_id => "$id\0", message_state => pack('C', $state),
                              async => 1);
        }
        elsif ($cmd == 0x00000015) {    # enquire_link
            logpdu(cmd => $name, seq => $pdu->{seq});
            $conn->enquire_link_resp(seq => $pdu->{seq});
        }
        elsif ($cmd == 0x00000006) {    # unbind
            logpdu(cmd => $name, seq => $pdu->{seq});
            $conn->unbind_resp(seq => $pdu->{seq});
            return;
        }
        else {    # deliver_sm_resp, enquire_link_resp, anything else: logged only
            logpdu(cmd => $name, seq => $pdu->{seq}, status => $pdu->{status});
            if (!($cmd & 0x80000000)) {
                $conn->generic_nack(seq => $pdu->{seq}, status => 0x03);
            }
        }
    }
}
