-- The original swoole-crontab-process `united_cron` database, as its webroot/Data/united_cron.sql
-- created it (only the tables the import reads), with sample rows: good ones and broken ones.

CREATE TABLE `auth_group` (
  `id` mediumint(8) unsigned NOT NULL AUTO_INCREMENT COMMENT '用户组id,自增主键',
  `module` varchar(20) NOT NULL DEFAULT '' COMMENT '用户组所属模块',
  `type` tinyint(4) NOT NULL DEFAULT '0' COMMENT '组类型',
  `title` char(20) NOT NULL DEFAULT '' COMMENT '用户组中文名称',
  `description` varchar(80) NOT NULL DEFAULT '' COMMENT '描述信息',
  `status` tinyint(1) NOT NULL DEFAULT '1' COMMENT '用户组状态：为1正常，为0禁用,-1为删除',
  `rules` varchar(500) NOT NULL DEFAULT '' COMMENT '用户组拥有的规则id，多个规则 , 隔开',
  PRIMARY KEY (`id`)
) ENGINE=MyISAM AUTO_INCREMENT=5 DEFAULT CHARSET=utf8;

CREATE TABLE `auth_group_access` (
  `uid` int(10) unsigned NOT NULL COMMENT '用户id',
  `group_id` mediumint(8) unsigned NOT NULL COMMENT '用户组id',
  UNIQUE KEY `uid_group_id` (`uid`,`group_id`),
  KEY `uid` (`uid`),
  KEY `group_id` (`group_id`)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;

CREATE TABLE `agents` (
  `id` int(10) NOT NULL AUTO_INCREMENT COMMENT 'aid',
  `gid` int(10) NOT NULL COMMENT '所属分组',
  `name` varchar(64) NOT NULL COMMENT '别名',
  `ip` varchar(20) NOT NULL COMMENT 'swoole服务ip',
  `port` int(10) NOT NULL COMMENT 'swoole服务端口',
  `status` tinyint(1) NOT NULL DEFAULT '1' COMMENT '-1:删除 0:暂停 1:正常 2:连接失败',
  `create_time` int(10) DEFAULT NULL COMMENT '创建时间',
  `update_time` int(10) DEFAULT NULL COMMENT '更新时间',
  `heart_beat_time` int(10) DEFAULT NULL COMMENT '心跳上报时间',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=6 DEFAULT CHARSET=utf8 COMMENT='agent连接信息表';

CREATE TABLE `crontab` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT COMMENT '任务ID',
  `gid` int(10) NOT NULL,
  `name` varchar(64) NOT NULL COMMENT '任务名称',
  `rule` varchar(32) NOT NULL COMMENT '规则 可以是crontab规则也可以是启动的间隔时间',
  `process_num` tinyint(5) NOT NULL DEFAULT '1' COMMENT '并发进程数  至少为1',
  `execute` varchar(512) NOT NULL COMMENT '运行命令行',
  `is_daemon` tinyint(1) NOT NULL DEFAULT '0' COMMENT '是否守护进程 0: 否 1: 是',
  `agents` varchar(1024) DEFAULT NULL COMMENT '任务所属agents',
  `run_user` varchar(32) NOT NULL COMMENT '进程运行时用户',
  `status` tinyint(1) NOT NULL DEFAULT '1' COMMENT ' -1:已删除 0:暂停 1:正常 2:出错',
  `create_time` int(10) DEFAULT NULL COMMENT '创建时间',
  `update_time` int(10) DEFAULT NULL COMMENT '修改时间',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=11 DEFAULT CHARSET=utf8 COMMENT='任务表';

CREATE TABLE `crontab_agent` (
  `task_id` int(10) unsigned NOT NULL COMMENT 'crontab任务id',
  `aid` mediumint(8) unsigned NOT NULL COMMENT 'agent id',
  UNIQUE KEY `task_id_aid` (`task_id`,`aid`),
  KEY `task_id` (`task_id`),
  KEY `aid` (`aid`)
) ENGINE=MyISAM DEFAULT CHARSET=utf8 COMMENT='任务-agent关联表';

CREATE TABLE `member` (
  `uid` int(10) unsigned NOT NULL AUTO_INCREMENT COMMENT '用户ID',
  `nickname` char(16) NOT NULL DEFAULT '' COMMENT '昵称',
  `sex` tinyint(3) unsigned NOT NULL DEFAULT '0' COMMENT '性别',
  `birthday` char(10) NOT NULL DEFAULT '0000-00-00' COMMENT '生日',
  `qq` char(10) NOT NULL DEFAULT '' COMMENT 'qq号',
  `score` mediumint(8) NOT NULL DEFAULT '0' COMMENT '用户积分',
  `login` int(10) unsigned NOT NULL DEFAULT '0' COMMENT '登录次数',
  `reg_ip` bigint(20) NOT NULL DEFAULT '0' COMMENT '注册IP',
  `reg_time` int(10) unsigned NOT NULL DEFAULT '0' COMMENT '注册时间',
  `last_login_ip` bigint(20) NOT NULL DEFAULT '0' COMMENT '最后登录IP',
  `last_login_time` int(10) unsigned NOT NULL DEFAULT '0' COMMENT '最后登录时间',
  `status` tinyint(4) NOT NULL DEFAULT '0' COMMENT '会员状态',
  PRIMARY KEY (`uid`),
  KEY `status` (`status`)
) ENGINE=MyISAM AUTO_INCREMENT=5 DEFAULT CHARSET=utf8 COMMENT='会员表';

CREATE TABLE `ucenter_member` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT COMMENT '用户ID',
  `username` char(16) NOT NULL COMMENT '用户名',
  `password` char(32) NOT NULL COMMENT '密码',
  `email` char(32) NOT NULL COMMENT '用户邮箱',
  `mobile` char(15) NOT NULL DEFAULT '' COMMENT '用户手机',
  `reg_time` int(10) unsigned NOT NULL DEFAULT '0' COMMENT '注册时间',
  `reg_ip` bigint(20) NOT NULL DEFAULT '0' COMMENT '注册IP',
  `last_login_time` int(10) unsigned NOT NULL DEFAULT '0' COMMENT '最后登录时间',
  `last_login_ip` bigint(20) NOT NULL DEFAULT '0' COMMENT '最后登录IP',
  `update_time` int(10) unsigned NOT NULL DEFAULT '0' COMMENT '更新时间',
  `status` tinyint(4) DEFAULT '0' COMMENT '用户状态',
  PRIMARY KEY (`id`),
  UNIQUE KEY `username` (`username`),
  UNIQUE KEY `email` (`email`),
  KEY `status` (`status`)
) ENGINE=MyISAM AUTO_INCREMENT=5 DEFAULT CHARSET=utf8 COMMENT='用户表';

INSERT INTO `auth_group` VALUES ('1', 'admin', '1', '运维组', '运维组', '1', '3,5,19,20');
INSERT INTO `auth_group` VALUES ('2', 'admin', '1', 'PHP组', 'PHP组', '1', '108,109');
INSERT INTO `auth_group` VALUES ('3', 'admin', '1', 'JAVA组', 'JAVA组', '0', '108,109');
INSERT INTO `auth_group` VALUES ('4', 'admin', '1', '旧组', '已删除', '-1', '');

INSERT INTO `agents` VALUES ('1', '1', 'web-1', '10.0.0.11', '9501', '1', '1478505090', '1478746610', '1478746608');
INSERT INTO `agents` VALUES ('2', '2', 'php-1', '10.0.0.12', '9501', '2', '1478505090', '1478746610', '1478746000');
INSERT INTO `agents` VALUES ('3', '1', 'old-box', '10.0.0.13', '9501', '-1', '1478505090', NULL, NULL);
INSERT INTO `agents` VALUES ('4', '0', '本地虚拟机', '192.168.56.102', '9501', '0', '1478831944', NULL, NULL);
INSERT INTO `agents` VALUES ('5', '3', 'web-1', '10.0.0.15', '9501', '1', '1478505090', NULL, NULL);

-- 1: a daemon ("#" was the original's rule for daemons); 2: every minute on two agents
-- (CSV and join table disagree: the union counts); 3: "#" on a rule that is not a daemon;
-- 4: a run_user that is no Unix user name; 5: 6 fields with a `*` year; 6: a year; 7: a CSV
-- naming an agent that never existed and a deleted one; 8: deleted; 9: in the error state;
-- 10: quotes in execute, and a group that does not exist.
INSERT INTO `crontab` VALUES ('1', '1', '测试', '#', '1', '/usr/local/php7/bin/php /home/Code/test.php', '1', '1', 'vagrant', '1', '1478500162', '1478768826');
INSERT INTO `crontab` VALUES ('2', '2', '测试二', '*/1 * * * *', '2', '/usr/local/php7/bin/php /home/Code/test2.php', '0', '1', 'www-data', '1', '1478500162', '1478746296');
INSERT INTO `crontab` VALUES ('3', '2', 'hash rule', '#', '1', '/bin/true', '0', '4', 'vagrant', '1', '1478512199', '1478746304');
INSERT INTO `crontab` VALUES ('4', '1', 'bad user', '*/5 * * * *', '1', '/bin/true', '0', '1', 'www data', '1', '1478512396', '1478768901');
INSERT INTO `crontab` VALUES ('5', '1', 'nightly', '0 3 * * * *', '1', '/usr/bin/backup --all', '0', '1', 'backup', '1', '1478512396', '1478768901');
INSERT INTO `crontab` VALUES ('6', '1', 'new year 2017', '0 0 1 1 * 2017', '1', '/bin/true', '0', '1', 'vagrant', '1', '1478512396', '1478768901');
INSERT INTO `crontab` VALUES ('7', '1', 'report', '30 2 * * *', '1', '/usr/bin/report', '0', '1,99,3', 'vagrant', '0', '1478512396', '1478768901');
INSERT INTO `crontab` VALUES ('8', '1', 'removed', '* * * * *', '1', '/bin/true', '0', '1', 'vagrant', '-1', '1478512396', '1478768901');
INSERT INTO `crontab` VALUES ('9', '2', 'broken once', '*/10 * * * *', '1', '/bin/false', '0', '2', 'vagrant', '2', '1478512396', '1478768901');
INSERT INTO `crontab` VALUES ('10', '9', 'quoted', '*/2 * * * *', '1', 'php -r \'echo 1;\'', '0', '', 'vagrant', '1', '1478512396', '1478768901');

INSERT INTO `crontab_agent` VALUES ('1', '1');
INSERT INTO `crontab_agent` VALUES ('2', '2');
INSERT INTO `crontab_agent` VALUES ('3', '4');
INSERT INTO `crontab_agent` VALUES ('7', '2');

INSERT INTO `member` VALUES ('1', 'admin', '0', '0000-00-00', '', '50', '15', '0', '1477900054', '3232249857', '1478839619', '1');
INSERT INTO `member` VALUES ('2', '张三', '0', '0000-00-00', '', '10', '3', '0', '1477900054', '0', '0', '1');
INSERT INTO `member` VALUES ('3', '王五', '0', '0000-00-00', '', '10', '3', '0', '1477900054', '0', '0', '1');
INSERT INTO `member` VALUES ('4', 'gone', '0', '0000-00-00', '', '0', '0', '0', '1477900054', '0', '0', '-1');

INSERT INTO `ucenter_member` VALUES ('1', 'admin', 'e30d8b00809ad1495ac7d1309a4a5c2e', 'admin@admin.com', '', '1477900054', '3232249857', '1478839619', '3232249857', '1477900054', '1');
INSERT INTO `ucenter_member` VALUES ('2', 'Zhang.San', '0b4e7a0e5fe84ad35fb5f95b9ceeac79', 'zhang@example.com', '', '1477900054', '0', '0', '0', '1477900054', '1');
INSERT INTO `ucenter_member` VALUES ('3', '王五', '0b4e7a0e5fe84ad35fb5f95b9ceeac79', 'wang@example.com', '', '1477900054', '0', '0', '0', '1477900054', '1');
INSERT INTO `ucenter_member` VALUES ('4', 'gone', '0b4e7a0e5fe84ad35fb5f95b9ceeac79', 'gone@example.com', '', '1477900054', '0', '0', '0', '1477900054', '-1');

INSERT INTO `auth_group_access` VALUES ('1', '1');
INSERT INTO `auth_group_access` VALUES ('2', '2');
INSERT INTO `auth_group_access` VALUES ('2', '1');
INSERT INTO `auth_group_access` VALUES ('3', '3');
INSERT INTO `auth_group_access` VALUES ('2', '4');
INSERT INTO `auth_group_access` VALUES ('9', '1');
