/** Renders the my.cnf of one harness node. */

export interface NodeConfig {
  dir: string;
  datadir: string;
  socket: string;
  pidFile: string;
  errorLog: string;
  tmpdir: string;
  port: number;
  serverId: number;
  applierThreads: number;
  semiSyncTimeoutMs: number;
  /** Extra [mysqld] lines, appended last so they override the defaults above. */
  extra: string;
  /** Address mariadbd listens on; default 127.0.0.1 (netns mode: 0.0.0.0 of its own namespace, so the VIP too). */
  bindAddress?: string;
  /** Address it reports to its primary (SHOW SLAVE HOSTS); default 127.0.0.1. */
  reportHost?: string;
}

/**
 * Every node gets the same replication settings, because any node may become primary or
 * replica after a failover. Two deliberate asymmetries live outside this file:
 * - `rpl_semi_sync_master_enabled` is NOT here: enabled in every config it stalls replicas
 *   for the whole timeout, so the harness turns it on with SET GLOBAL on the primary only,
 *   after the replicas attached. Wait point and timeout are here so a promotion only has to
 *   flip the switch.
 * - `read_only` is set with SET GLOBAL on replicas after wiring: a restarted primary must not
 *   come back read-only by accident, and a restarted replica is fenced by the caller.
 */
export function renderMyCnf(c: NodeConfig): string {
  return `[mysqld]
user=root
datadir=${c.datadir}
socket=${c.socket}
pid-file=${c.pidFile}
log_error=${c.errorLog}
tmpdir=${c.tmpdir}
port=${c.port}
bind-address=${c.bindAddress ?? '127.0.0.1'}
skip_name_resolve
server_id=${c.serverId}
report_host=${c.reportHost ?? '127.0.0.1'}
report_port=${c.port}

log_bin=binlog
relay_log=relay-bin
log_slave_updates=ON
gtid_strict_mode=ON
binlog_format=ROW
sync_binlog=1
innodb_flush_log_at_trx_commit=1

slave_net_timeout=3
slave_parallel_threads=${c.applierThreads}
rpl_semi_sync_slave_enabled=ON
rpl_semi_sync_master_wait_point=AFTER_SYNC
rpl_semi_sync_master_timeout=${c.semiSyncTimeoutMs}

# Small footprint: several nodes share two cores with everything else.
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
innodb_log_buffer_size=4M
key_buffer_size=1M
aria_pagecache_buffer_size=8M
performance_schema=OFF
max_connections=200
thread_cache_size=8
table_open_cache=400
${c.extra}
[client]
user=root
socket=${c.socket}
`;
}
