# loadtest/compare.d/nginx.conf.sh: writes the nginx configuration that
# loadtest/compare runs. Sourced by loadtest/compare; prints the file on stdout.
#
# One nginx instance (so one process tree for CPU accounting) with these
# servers, each on its own port:
#   nginx       proxy_cache tuned as nginx's own docs recommend for a cache in
#               front of a keep-alive origin, sendfile on
#   nginx-nosf  the same server with sendfile off (file read into output_buffers)
#   nginx-tls   the same as nginx, on "listen ... ssl"
#   nginx-old   the configuration loadtest/compare used before 2026-12-05,
#               unchanged, with its own cache (for the before/after record)
#   static      plain static files from $TMP/nginx/static: the ceiling of any
#               nginx proxy_cache row
#   static-nosf the same with sendfile off (1 MiB only: faster there on the
#               development machine, so the ceiling is the better of the two)
# The tuned servers share one cache; nginx-old keeps its own, as it was.
#
# Inputs (shell variables): TMP O_PORT N_PORT NNOSF_PORT NOLD_PORT NS_PORT NSNOSF_PORT
# NTLS_PORT WORKERS CACHE TUNED_MAX CERT KEY NGINX_USER NOFILE WCONN OFC_MAX.
# The open file cache and the connections share one worker's descriptor
# limit (NOFILE): an open file cache larger than it fails opens and accepts.

# Settings every tuned server shares (server level).
tuned_common() {
	cat <<CONF
		# Clients never reconnect: wrk and load keep one connection per worker.
		keepalive_requests 10000000;
		keepalive_timeout 75s;
		# tcp_nopush (TCP_CORK) off: with it on, 100 KiB cache hits stall
		# about 44 ms each (p50 43.8 ms, 1.6-1.8k req/s; off: 5 ms, 6.8-7.6k).
		tcp_nopush off;
		tcp_nodelay on;
CONF
}

tuned_location() {
	cat <<CONF
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache edge;
			proxy_cache_key \$uri\$is_args\$args;
			proxy_cache_lock on;
			proxy_cache_lock_timeout 30s;
			# A 100 KiB response fits the buffers: no proxy temp file.
			proxy_buffering on;
			proxy_buffer_size 16k;
			proxy_buffers 16 16k;
			proxy_busy_buffers_size 64k;
			add_header X-Cache-Status \$upstream_cache_status always;
		}
CONF
}

cat <<CONF
$NGINX_USER
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections $WCONN; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/tmp/body;
	proxy_temp_path $TMP/nginx/tmp/proxy;
	fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
	uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
	scgi_temp_path $TMP/nginx/tmp/scgi;

	# Cached files stay open between hits (the cache's files too:
	# ngx_http_file_cache opens through the open file cache). One cache for
	# all tuned servers; nginx-old turns it off.
	open_file_cache max=$OFC_MAX inactive=60s;
	open_file_cache_valid 60s;
	open_file_cache_min_uses 1;
	open_file_cache_errors on;

	# Tuned: a disk cache with edged's disk budget (page cache as its memory).
	proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=edge:64m max_size=$TUNED_MAX inactive=1h use_temp_path=off;
	upstream origin {
		server 127.0.0.1:$O_PORT;
		keepalive 64;
		keepalive_requests 10000000;
		keepalive_timeout 60s;
	}

	server {
		listen 127.0.0.1:$N_PORT;
		sendfile on;
$(tuned_common)
$(tuned_location)
	}
	server {
		listen 127.0.0.1:$NNOSF_PORT;
		sendfile off;
		output_buffers 2 128k;
$(tuned_common)
$(tuned_location)
	}
	server {
		listen 127.0.0.1:$NTLS_PORT ssl;
		ssl_certificate $CERT;
		ssl_certificate_key $KEY;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_session_cache shared:TLS:10m;
		sendfile on;
$(tuned_common)
$(tuned_location)
	}
	server {
		listen 127.0.0.1:$NS_PORT;
		root $TMP/nginx/static;
		sendfile on;
$(tuned_common)
		location / { }
	}
	server {
		listen 127.0.0.1:$NSNOSF_PORT;
		root $TMP/nginx/static;
		sendfile off;
		output_buffers 2 128k;
$(tuned_common)
		location / { }
	}

	# Before 2026-12-05, unchanged: http-level sendfile on and tcp_nopush on,
	# default keepalive_requests (1000) and buffers, no open_file_cache,
	# max_size equal to the memory tiers.
	proxy_cache_path $TMP/nginx/cache-old levels=1:2 keys_zone=old:$CACHE max_size=$CACHE inactive=1h use_temp_path=off;
	upstream origin_old { server 127.0.0.1:$O_PORT; keepalive 64; }
	server {
		listen 127.0.0.1:$NOLD_PORT;
		open_file_cache off;
		sendfile on;
		tcp_nopush on;
		location / {
			proxy_pass http://origin_old;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache old;
			proxy_cache_lock on;
			add_header X-Cache-Status \$upstream_cache_status always;
		}
	}
}
CONF
